"""PLADIS-applied pipelines with the denoiser under ``torch.compile(fullgraph=True)``: the same images.

Each PLADIS cross-attention traces as the opaque operator ``torch.ops.pladis.attention``; a graph break
anywhere in the processors (mask handling, q/k norms, the timestep window) would fail ``fullgraph``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

import pladis

PROMPT = "a photo of a red cat left of a blue circle"


def _images(pipe: Any, tiny: Any) -> Any:
    kwargs = dict(tiny.FAST_CALL_KWARGS, height=32, width=32)
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.mark.parametrize(
    ("name", "window"), [("sd15", None), ("sdxl", None), ("sana", None), ("pixart", None), ("sd15", (0.0, 0.5))]
)
def test_compiled_denoiser_gives_the_same_images(name: str, window: tuple[float, float] | None) -> None:
    tiny = importlib.import_module(f"pladis_adapter_{name}.tiny")
    pipe = tiny.tiny_pipeline(0)
    handle = pladis.apply(pipe, **({} if window is None else dict(start=window[0], end=window[1])))
    expected = _images(pipe, tiny)
    attr = "unet" if hasattr(pipe, "unet") else "transformer"
    eager_denoiser = getattr(pipe, attr)
    torch._dynamo.reset()
    setattr(pipe, attr, torch.compile(eager_denoiser, fullgraph=True, backend="aot_eager"))
    try:
        assert (_images(pipe, tiny) == expected).all()
    finally:
        setattr(pipe, attr, eager_denoiser)
    handle.remove()
    assert not (_images(pipe, tiny) == expected).all()  # PLADIS was on in both runs above


def test_apply_to_an_already_compiled_denoiser_selects_layers_and_keeps_the_window() -> None:
    """Applied after ``torch.compile``: layer names and the timestep position are the model's own."""
    tiny = importlib.import_module("pladis_adapter_sd15.tiny")
    pipe = tiny.tiny_pipeline(0)
    baseline = _images(pipe, tiny)
    eager_unet = pipe.unet
    torch._dynamo.reset()
    pipe.unet = torch.compile(eager_unet, fullgraph=True, backend="aot_eager")
    try:
        handle = pladis.apply(pipe, layers="mid", start=0.0, end=0.4)  # progress is 0.499, 0.999 here: no step inside
        assert handle.denoiser is eager_unet and handle.layer_names == ["mid_block.attentions.0.transformer_blocks.0.attn2"]
        assert (_images(pipe, tiny) == baseline).all() and handle.window.progress is not None
        assert pladis.remove(pipe.unet) is True
        handle = pladis.apply(pipe.unet, layers="mid")  # the compiled module itself
        assert handle.adapter.name == "sd15" and not (_images(pipe, tiny) == baseline).all()
        handle.remove()
    finally:
        pipe.unet = eager_unet
