"""The CLI on a video pipeline (a tiny AnimateDiff saved with ``save_pretrained``, loaded through
``--model DIR``): the written clips decode back to the frames asked for, lossless WebP frames equal the
pipeline's own output with PLADIS applied, compare clips are side by side, sidecars, ``maps --frame``,
and the video options refused where they do not apply."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pladis.cli import _video

pytest.importorskip("pladis_adapter_animatediff")

PROMPT = "a red circle left of a blue square"
TINY = ["--steps", "2", "--height", "32", "--width", "40", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from pladis_adapter_animatediff import tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "animatediff"
    tiny_pipeline(0).save_pretrained(path)
    return path


def _webp_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as clip:
        frames = []
        for index in range(clip.n_frames):
            clip.seek(index)
            frames.append(np.asarray(clip.convert("RGB")))
    return frames


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def test_generate_writes_an_mp4_with_the_frames_asked_for(model: Path, cli, tmp_path: Path) -> None:
    import imageio.v3 as iio

    code, errors = cli("generate", PROMPT, "--model", model, *TINY, "--num-frames", "3", "--fps", "6",
                       "--out", "out")
    assert (code, errors) == (0, [])
    clip = tmp_path / "out" / "00-a-red-circle-left-of-a-blue-square.mp4"
    frames = iio.imread(clip)  # decoded by imageio's ffmpeg
    assert frames.shape == (3, 32, 40, 3)
    assert iio.immeta(clip)["fps"] == pytest.approx(6.0)
    record = _sidecar(clip)
    assert (record["file"], record["num_frames"], record["frame_size"], record["fps"], record["video_format"]) == \
        (clip.name, 3, [40, 32], 6.0, "mp4")
    assert record["pladis_layers"] == 4 and record["model"]["pipeline_class"] == "AnimateDiffPipeline"
    assert record["sampling"]["num_frames"] == 3


def test_lossless_webp_frames_equal_the_pipeline_output_with_pladis(model: Path, cli, tmp_path: Path) -> None:
    from diffusers import AnimateDiffPipeline

    import pladis

    code, _ = cli("generate", PROMPT, "--model", model, *TINY, "--num-frames", "2", "--video-format", "webp",
                  "--scale", "2", "--preset", "default", "--out", "out")
    assert code == 0
    written = _webp_frames(tmp_path / "out" / "00-a-red-circle-left-of-a-blue-square.webp")

    pipe = AnimateDiffPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    call = _sidecar(tmp_path / "out" / "00-a-red-circle-left-of-a-blue-square.webp")["sampling"]
    pipe.scheduler = pladis.adapters.default_registry().get("animatediff").spec.preset().make_scheduler(
        pipe.scheduler.config)
    with pladis.enabled(pipe, scale=2.0):
        expected = pipe(PROMPT, generator=torch.Generator().manual_seed(0), output_type="pil", **call).frames[0]
    assert len(written) == len(expected) == 2
    for got, want in zip(written, expected, strict=True):
        assert np.array_equal(got, np.asarray(want))


def test_compare_writes_side_by_side_clips(model: Path, cli, tmp_path: Path) -> None:
    code, _ = cli("compare", PROMPT, "--model", model, *TINY, "--num-frames", "2", "--video-format", "webp",
                  "--out", "out")
    assert code == 0
    out = tmp_path / "out"
    stem = "00-a-red-circle-left-of-a-blue-square"
    baseline, boosted = _webp_frames(out / f"{stem}-baseline.webp"), _webp_frames(out / f"{stem}-pladis.webp")
    grid = _webp_frames(out / f"{stem}-compare.webp")
    assert len(baseline) == len(boosted) == len(grid) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(baseline, boosted, strict=True))
    record = _sidecar(out / f"{stem}-compare.webp")
    assert [cell["file"] for cell in record["cells"]] == [f"{stem}-baseline.webp", f"{stem}-pladis.webp"]
    # every compare frame is the captioned grid of that frame's two clips (cells upscaled nearest-neighbour)
    layout = record["grid"]
    step = layout["scale"]
    for frame, left, right in zip(grid, baseline, boosted, strict=True):
        assert frame.shape[:2] == (layout["size"][1], layout["size"][0])
        cells = [frame[y0:y1:step, x0:x1:step] for x0, y0, x1, y1 in layout["boxes"]]
        assert np.array_equal(cells[0], left) and np.array_equal(cells[1], right)


def test_maps_shows_the_chosen_frame(model: Path, cli, tmp_path: Path) -> None:
    maps = {}
    for frame in (0, 2):
        code, _ = cli("maps", PROMPT, "--model", model, *TINY, "--num-frames", "3", "--frame", frame,
                      "--tokens", "circle,square", "--out", f"out{frame}")
        assert code == 0
        stem = tmp_path / f"out{frame}" / "00-a-red-circle-left-of-a-blue-square-maps"
        record = _sidecar(stem.with_suffix(".png"))
        assert f"frame {frame} of 3" in record["notes"]
        maps[frame] = np.load(stem.with_suffix(".npz"))
        assert list(maps[frame]["tokens"]) == ["circle", "square"]
    assert maps[0]["pladis"].shape == maps[2]["pladis"].shape
    assert not np.allclose(maps[0]["pladis"], maps[2]["pladis"])
    code, errors = cli("maps", PROMPT, "--model", model, *TINY, "--num-frames", "3", "--frame", "3")
    assert code == 2 and errors == ["pladis: error: --frame 3: the clip has 3 frames (0 to 2)"]


def test_frame_batch_index_follows_the_branches_of_the_batch() -> None:
    cfg, plain = SimpleNamespace(do_classifier_free_guidance=True), SimpleNamespace(do_classifier_free_guidance=False)
    assert _video.frame_batch_index(cfg, 2 * 5, 5, 3) == 8  # [uncond × 5, cond × 5]
    assert _video.frame_batch_index(cfg, 3 * 5, 5, 0) == 5  # PAG: [uncond, cond, perturbed]
    assert _video.frame_batch_index(plain, 5, 5, 4) == 4
    assert _video.frame_batch_index(cfg, 5, 5, 4) == 4  # CFG off for this call (guidance 1)


def test_video_options_are_refused_on_image_pipelines(cli, tmp_path: Path) -> None:
    code, errors = cli("generate", PROMPT, "--steps", "1", "--num-frames", "4", "--fps", "3", "-q", "--out", "o")
    assert code == 2
    assert errors == ["pladis: error: --num-frames/--fps: StableDiffusionPipeline makes images, not videos"]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_generate_writes_a_wan_clip(cli, tmp_path: Path) -> None:
    pytest.importorskip("pladis_adapter_wan")
    from pladis_adapter_wan import tiny_pipeline

    tiny_pipeline(0).save_pretrained(tmp_path / "wan")
    wan = ["--model", tmp_path / "wan", "--steps", "2", "--height", "32", "--width", "32", "--device", "cpu", "-q",
           "--call-arg", "max_sequence_length=16"]
    code, errors = cli("generate", PROMPT, *wan, "--num-frames", "5", "--video-format", "gif", "--out", "out")
    assert (code, errors) == (0, [])
    clip = tmp_path / "out" / "00-a-red-circle-left-of-a-blue-square.gif"
    with Image.open(clip) as gif:
        assert (gif.n_frames, gif.size) == (5, (32, 32))
    record = _sidecar(clip)
    assert record["pladis_layers"] == 2 and record["model"]["backbone"] == "wan"
