"""PLADIS composed with CFG, PAG and SEG: every combination runs, and PLADIS adds no denoiser calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import SanaPAGPipeline, StableDiffusionPAGPipeline, StableDiffusionXLPAGPipeline

import pladis
from pladis.adapters import default_registry
from pladis.guidance import StableDiffusionSEGPipeline, StableDiffusionXLSEGPipeline

STEPS = 2
GUIDANCE = {  # cell -> (pipeline kind, call kwargs, UNet batch per step)
    "none": ("base", {"guidance_scale": 1.0}, 1),
    "cfg": ("base", {"guidance_scale": 5.0}, 2),
    "pag": ("pag", {"guidance_scale": 1.0, "pag_scale": 3.0}, 2),
    "seg": ("seg", {"guidance_scale": 1.0, "seg_scale": 3.0}, 2),
    "cfg+pag": ("pag", {"guidance_scale": 5.0, "pag_scale": 3.0}, 3),
    "cfg+seg": ("seg", {"guidance_scale": 5.0, "seg_scale": 3.0}, 3),
}
GUIDED = {
    "sd15": {"pag": StableDiffusionPAGPipeline, "seg": StableDiffusionSEGPipeline},
    "sdxl": {"pag": StableDiffusionXLPAGPipeline, "seg": StableDiffusionXLSEGPipeline},
    "sana": {"pag": SanaPAGPipeline},
}
MATRIX = [("sd15", cell) for cell in GUIDANCE] + [("sdxl", cell) for cell in GUIDANCE]
MATRIX += [("sana", "cfg"), ("sana", "cfg+pag")]


def _pipelines(backbone: str, order: str):
    """The base pipeline and its PAG/SEG siblings sharing one denoiser (``from_pipe``)."""
    spec = default_registry().get(backbone).spec
    base = spec.tiny(seed=0)
    if order == "pladis-first":
        pladis.apply(base, scale=2.0)
    pipes = {"base": base, **{kind: cls.from_pipe(base) for kind, cls in GUIDED[backbone].items()}}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    return spec, pipes


def _run(pipe, spec, kwargs):
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    batches = []
    hook = denoiser.register_forward_pre_hook(
        lambda m, args, kw: batches.append((args[0] if args else kw["hidden_states"]).shape[0]), with_kwargs=True
    )
    try:
        image = pipe("a red circle and a blue square", generator=torch.Generator().manual_seed(0),
                     **dict(spec.tiny_call_kwargs, num_inference_steps=STEPS), **kwargs).images
    finally:
        hook.remove()
    return np.asarray(image), batches


@pytest.mark.parametrize("backbone,cell", MATRIX)
def test_guidance_cell_off_and_on(backbone, cell):
    spec, pipes = _pipelines(backbone, "guidance-first")
    kind, kwargs, batch = GUIDANCE[cell]
    off, calls_off = _run(pipes[kind], spec, kwargs)
    assert calls_off == [batch] * STEPS

    handle = pladis.apply(pipes["base"], scale=2.0)
    on, calls_on = _run(pipes[kind], spec, kwargs)
    assert calls_on == calls_off, "PLADIS adds no denoiser forward calls"
    assert np.isfinite(on).all() and np.abs(on - off).max() > 1e-4
    # guidance pipelines restore their processors after the call: PLADIS is still installed
    denoiser = handle.denoiser
    assert all(isinstance(denoiser.attn_processors[f"{n}.processor"], pladis.PLADISAttnProcessor)
               for n in handle.layer_names)
    handle.remove()
    assert np.array_equal(_run(pipes[kind], spec, kwargs)[0], off)


@pytest.mark.parametrize("backbone", ["sd15", "sdxl"])
@pytest.mark.parametrize("kind,kwargs", [("pag", GUIDANCE["cfg+pag"][1]), ("seg", GUIDANCE["cfg+seg"][1])])
def test_installation_order_does_not_matter(backbone, kind, kwargs):
    spec, first = _pipelines(backbone, "pladis-first")
    image_first, _ = _run(first[kind], spec, kwargs)
    spec, second = _pipelines(backbone, "guidance-first")
    pladis.apply(second["base"], scale=2.0)
    image_second, _ = _run(second[kind], spec, kwargs)
    assert np.array_equal(image_first, image_second)
