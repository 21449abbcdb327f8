"""``pladis maps`` on the SDPA-intercepted video transformers (tiny Wan and LTX-Video folders, ``--model DIR``):
the maps of a frame equal the weights recomputed from the q/k its ``attn2`` modules computed, for that
latent frame's tokens (softmax at λ = 0, (1 − λ)·softmax + λ·α-entmax with PLADIS; LTX with its text
mask); pixel frames decoded from one latent frame share its maps; bad ``--frame`` values are refused.
Image-to-video maps (``--image``): test_cli_image_input.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pladis

PROMPT = "a red circle left of a blue square"
STEM = "00-a-red-circle-left-of-a-blue-square"


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory) -> Path:
    pytest.importorskip("pladis_adapter_wan")
    from pladis_adapter_wan import tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "wan"
    tiny_pipeline(0).save_pretrained(path)
    return path


# 5 frames of 64x96: 2 latent frames (4x temporal) of 8x12 latents, 4x6 tokens each (patch 2)
WAN = ["--steps", "2", "--height", "64", "--width", "96", "--num-frames", "5", "--device", "cpu", "-q",
       "--call-arg", "max_sequence_length=16", "--max-tokens", "16"]


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def _entmax15(z: torch.Tensor) -> torch.Tensor:
    """1.5-entmax over the last axis by bisection on τ (p = [z/2 − τ]₊², Σp = 1), in float64."""
    z = z.double() / 2
    low, high = z.max(-1, keepdim=True).values - 1, z.max(-1, keepdim=True).values
    for _ in range(100):
        tau = (low + high) / 2
        total = (z - tau).clamp(min=0).pow(2).sum(-1, keepdim=True)
        low, high = torch.where(total >= 1, tau, low), torch.where(total >= 1, high, tau)
    p = (z - (low + high) / 2).clamp(min=0).pow(2)
    return p / p.sum(-1, keepdim=True)


def _reference_maps(model: Path, record: dict, *, pladis_on: bool, tokens: slice, backbone: str = "wan") -> torch.Tensor:
    """The head-, step- and layer-averaged text attention of the queries ``tokens``, recomputed from the q/k
    that hooks on each ``attn2``'s ``norm_q``/``norm_k`` saw in the conditional branch (Wan: the first of
    its two calls per step under CFG; LTX: batch element 1 of [uncond, cond], with the text mask the
    transformer turns into a −10000 bias)."""
    import diffusers

    cls = {"wan": diffusers.WanPipeline, "ltx": diffusers.LTXPipeline}[backbone]
    pipe = cls.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    preset = pladis.adapters.default_registry().get(backbone).spec.preset()
    if preset.scheduler is not None:
        pipe.scheduler = preset.make_scheduler(pipe.scheduler.config)
    blocks = pipe.transformer.blocks if backbone == "wan" else pipe.transformer.transformer_blocks
    captured: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for index, block in enumerate(blocks):
        for part in ("q", "k"):
            def keep(module, args, output, name=f"{index}{part}"):
                captured.setdefault(name, []).append(output.detach().clone())
            hooks.append(getattr(block.attn2, f"norm_{part}").register_forward_hook(keep))
    masks: list[torch.Tensor | None] = []
    hooks.append(pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: masks.append(kwargs.get("encoder_attention_mask")), with_kwargs=True))
    settings = record["pladis"]
    handle = pladis.apply(pipe, scale=settings["scale"], alpha=settings["alpha"],
                          temperature=settings["temperature"]) if pladis_on else None
    pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(record["seed"]), output_type="np",
         **record["sampling"])
    for hook in hooks:
        hook.remove()
    if handle is not None:
        handle.remove()
    steps = record["sampling"]["num_inference_steps"]
    layers = []
    for index, block in enumerate(blocks):
        heads = block.attn2.heads
        queries, keys = captured[f"{index}q"], captured[f"{index}k"]
        assert len(queries) == 2 * steps if backbone == "wan" else len(queries) == steps
        if backbone == "wan":  # [cond, uncond] calls per step
            queries, keys, batch, calls = queries[::2], keys[::2], 0, masks[::2]
        else:  # one call per step, batch [uncond, cond]
            batch, calls = 1, masks
        per_step = []
        for q, k, mask in zip(queries, keys, calls, strict=True):
            q = q[batch : batch + 1].unflatten(-1, (heads, -1)).transpose(1, 2)[:, :, tokens].double()
            k = k[batch : batch + 1].unflatten(-1, (heads, -1)).transpose(1, 2).double()
            scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
            if mask is not None:
                scores = scores + (1 - mask[batch].double()) * -10000.0
            weights = torch.softmax(scores, -1)
            if pladis_on:
                lam = settings["scale"]
                weights = (1 - lam) * weights + lam * _entmax15(scores / settings["temperature"])
            per_step.append(weights[0].mean(0))
        layers.append(torch.stack(per_step).mean(0))
    return torch.stack(layers).mean(0).T  # (keys, queries)


def test_wan_maps_of_a_frame_equal_the_recomputed_weights(wan_dir: Path, cli, tmp_path: Path) -> None:
    code, errors = cli("maps", PROMPT, "--model", wan_dir, *WAN, "--frame", "3", "--scale", "2", "--out", "out")
    assert (code, errors) == (0, [])
    figure = tmp_path / "out" / f"{STEM}-maps.png"
    record = _sidecar(figure)
    assert record["pladis"]["alpha"] == 1.5  # the reference's α-entmax is entmax15
    assert "frame 3 of 5 (latent frame 1 of 2, 4x6 tokens)" in record["notes"]
    raw = np.load(tmp_path / "out" / f"{STEM}-maps.npz")
    positions = list(raw["positions"])
    assert [t["position"] for t in record["tokens"]] == positions and len(positions) > 1
    # pixel frame 3 comes from latent frame 1: queries 24..47 of the (2, 4, 6) tokens
    for variant, on in (("baseline", False), ("pladis", True)):
        expected = _reference_maps(wan_dir, record, pladis_on=on, tokens=slice(24, 48))
        expected = expected[positions].reshape(len(positions), 4, 6).float().numpy()
        np.testing.assert_allclose(raw[variant], expected, atol=2e-5, rtol=0)
    assert not np.allclose(raw["baseline"], raw["pladis"], atol=1e-3)
    # the figure: rows baseline / PLADIS, columns the frame, one panel per token, the colour bar
    assert len(record["grid"]["boxes"]) == 2 * (1 + len(positions) + 1)
    with Image.open(figure) as image:
        assert list(image.size) == record["grid"]["size"]


def test_wan_maps_default_to_the_middle_frame_and_refuse_other_frames(wan_dir: Path, cli, tmp_path: Path) -> None:
    maps = {}
    for frame in (None, "0", "3"):
        extra = [] if frame is None else ["--frame", frame]
        code, _ = cli("maps", PROMPT, "--model", wan_dir, *WAN, *extra, "--out", f"out{frame}")
        assert code == 0
        record = _sidecar(tmp_path / f"out{frame}" / f"{STEM}-maps.png")
        maps[frame] = np.load(tmp_path / f"out{frame}" / f"{STEM}-maps.npz")["pladis"]
        if frame is None:
            assert "frame 2 of 5 (latent frame 1 of 2, 4x6 tokens)" in record["notes"]
    assert np.array_equal(maps[None], maps["3"])  # pixel frames 2 and 3 are both decoded from latent frame 1
    assert not np.allclose(maps["0"], maps["3"])
    code, errors = cli("maps", PROMPT, "--model", wan_dir, *WAN, "--frame", "5")
    assert code == 2 and errors == ["pladis: error: --frame 5: the clip has 5 frames (0 to 4)"]


def test_ltx_maps_follow_the_latent_frames(cli, tmp_path: Path) -> None:
    pytest.importorskip("pladis_adapter_ltx")
    from pladis_adapter_ltx import tiny_pipeline

    tiny_pipeline(0).save_pretrained(tmp_path / "ltx")
    # 9 frames of 32x64: 3 latent frames (4x temporal) of 8x16 tokens (4x spatial, patch 1)
    ltx = ["--model", tmp_path / "ltx", "--steps", "2", "--height", "32", "--width", "64", "--num-frames", "9",
           "--device", "cpu", "-q", "--call-arg", "max_sequence_length=16"]
    maps = {}
    for frame in ("1", "4", "5"):
        code, errors = cli("maps", PROMPT, *ltx, "--frame", frame, "--max-tokens", "16", "--out", f"out{frame}")
        assert (code, errors) == (0, [])
        maps[frame] = np.load(tmp_path / f"out{frame}" / f"{STEM}-maps.npz")
        assert maps[frame]["pladis"].shape[1:] == (8, 16)
    # frame 5 comes from latent frame 2: queries 256..383 of the (3, 8, 16) tokens; masked text keys
    record = _sidecar(tmp_path / "out5" / f"{STEM}-maps.png")
    positions = list(maps["5"]["positions"])
    for variant, on in (("baseline", False), ("pladis", True)):
        expected = _reference_maps(tmp_path / "ltx", record, pladis_on=on, tokens=slice(256, 384), backbone="ltx")
        expected = expected[positions].reshape(len(positions), 8, 16).float().numpy()
        np.testing.assert_allclose(maps["5"][variant], expected, atol=2e-5, rtol=0)
    assert np.array_equal(maps["1"]["pladis"], maps["4"]["pladis"])  # pixel frames 1..4: latent frame 1
    assert np.array_equal(maps["1"]["baseline"], maps["4"]["baseline"])
    assert not np.allclose(maps["4"]["pladis"], maps["5"]["pladis"])  # frame 5: latent frame 2
    code, errors = cli("maps", PROMPT, *ltx, "--frame", "9")
    assert code == 2 and errors == ["pladis: error: --frame 9: the clip has 9 frames (0 to 8)"]
