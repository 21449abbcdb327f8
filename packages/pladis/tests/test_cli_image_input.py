"""``--image PATH`` of generate / compare on a tiny Wan image-to-video folder (``--model DIR``): the written
clip is the pipeline's own output for that image with PLADIS on (lossless WebP frames, equal bits), its
frame count and size; bad paths and pipelines without an image argument are refused in one line."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pladis

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_video import _sidecar, _webp_frames  # noqa: E402

pytest.importorskip("pladis_adapter_wan")

PROMPT = "a red circle left of a blue square"
STEM = "00-a-red-circle-left-of-a-blue-square"
I2V = ["--steps", "2", "--height", "32", "--width", "32", "--num-frames", "5", "--device", "cpu", "-q",
       "--video-format", "webp"]


@pytest.fixture(scope="module")
def i2v_dir(tmp_path_factory) -> Path:
    from pladis_adapter_wan import tiny_i2v_pipeline

    path = tmp_path_factory.mktemp("models") / "wan-i2v"
    tiny_i2v_pipeline(0).save_pretrained(path)
    return path


def _input_image(path: Path, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path




def _pipeline_frames(model: Path, image: Path, record: dict, **pladis_settings) -> list[np.ndarray]:
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = pladis.adapters.default_registry().get("wan").spec.preset().make_scheduler(pipe.scheduler.config)
    with Image.open(image) as loaded:
        picture = loaded.convert("RGB")
    with pladis.enabled(pipe, **pladis_settings) if pladis_settings["scale"] else contextlib.nullcontext():
        frames = pipe(prompt=PROMPT, image=picture, generator=torch.Generator().manual_seed(0), output_type="pil",
                      **record["sampling"]).frames[0]
    return [np.asarray(frame) for frame in frames]


def test_generate_passes_the_image_to_an_image_to_video_pipeline(i2v_dir: Path, cli, tmp_path: Path) -> None:
    image = _input_image(tmp_path / "first.png")
    code, errors = cli("generate", PROMPT, "--model", i2v_dir, "--image", image, *I2V, "--scale", "2", "--out", "out")
    assert (code, errors) == (0, [])
    clip = tmp_path / "out" / f"{STEM}.webp"
    written = _webp_frames(clip)
    assert len(written) == 5 and all(frame.shape == (32, 32, 3) for frame in written)
    record = _sidecar(clip)
    assert record["input_image"] == str(image) and "image" not in record["sampling"]
    assert record["model"]["pipeline_class"] == "WanImageToVideoPipeline" and record["pladis_layers"] == 2
    expected = _pipeline_frames(i2v_dir, image, record, scale=2.0)
    assert all(np.array_equal(got, want) for got, want in zip(written, expected, strict=True))
    # the image is an input: another one gives another clip
    other = _pipeline_frames(i2v_dir, _input_image(tmp_path / "other.png", seed=1), record, scale=2.0)
    assert not all(np.array_equal(got, want) for got, want in zip(written, other, strict=True))


def test_compare_gives_both_clips_the_image(i2v_dir: Path, cli, tmp_path: Path) -> None:
    image = _input_image(tmp_path / "first.png")
    code, errors = cli("compare", PROMPT, "--model", i2v_dir, "--image", image, *I2V, "--out", "out")
    assert (code, errors) == (0, [])
    out = tmp_path / "out"
    baseline = _webp_frames(out / f"{STEM}-baseline.webp")
    record = _sidecar(out / f"{STEM}-baseline.webp")
    assert record["input_image"] == str(image)
    expected = _pipeline_frames(i2v_dir, image, record, scale=0.0)  # λ = 0: the untouched pipeline
    assert all(np.array_equal(got, want) for got, want in zip(baseline, expected, strict=True))
    boosted = _webp_frames(out / f"{STEM}-pladis.webp")
    assert len(boosted) == 5 and any(not np.array_equal(a, b) for a, b in zip(baseline, boosted, strict=True))


def test_image_errors_are_one_line(cli, tmp_path: Path) -> None:
    code, errors = cli("generate", PROMPT, "--image", "missing.png", "--steps", "1", "-q", "--out", "o")
    assert code == 2 and errors == ["pladis: error: --image 'missing.png': no such file"]
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    code, errors = cli("compare", PROMPT, "--image", "notes.png", "--steps", "1", "-q", "--out", "o")
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith("pladis: error: --image 'notes.png': cannot read it as an image (")
    _input_image(tmp_path / "first.png")
    code, errors = cli("generate", PROMPT, "--image", "first.png", "--steps", "1", "--device", "cpu", "-q",
                       "--out", "o")
    assert code == 2 and errors == ["pladis: error: --image: StableDiffusionPipeline takes no input image"]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_maps_on_image_to_video_record_the_text_call(i2v_dir: Path, cli, tmp_path: Path) -> None:
    image = _input_image(tmp_path / "first.png")
    code, errors = cli("maps", PROMPT, "--model", i2v_dir, "--image", image, "--steps", "2", "--height", "32",
                       "--width", "32", "--num-frames", "5", "--frame", "0", "--device", "cpu", "-q", "--out", "out")
    assert (code, errors) == (0, [])
    record = _sidecar(tmp_path / "out" / f"{STEM}-maps.png")
    assert record["input_image"] == str(image)
    assert "frame 0 of 5 (latent frame 0 of 2, 2x2 tokens)" in record["notes"]
    assert record["recorded"]["layers"] == ["blocks.0.attn2", "blocks.1.attn2"]
    raw = np.load(tmp_path / "out" / f"{STEM}-maps.npz")
    assert raw["pladis"].shape == (len(record["tokens"]), 2, 2) and len(record["tokens"]) > 1
    assert not np.allclose(raw["baseline"], raw["pladis"])
