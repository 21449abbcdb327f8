"""The timestep window of pladis.apply(start=, end=): progress = 1 − t/T, acting only inside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pladis
from pladis.adapters import default_registry


def _pipe(backbone: str):
    spec = default_registry().get(backbone).spec
    pipe = spec.tiny(seed=0)
    return pipe, dict(spec.tiny_call_kwargs, num_inference_steps=4)


def _image(pipe, kwargs) -> np.ndarray:
    return np.asarray(pipe("a blue square", generator=torch.Generator().manual_seed(0), **kwargs).images)


@pytest.mark.parametrize("backbone", ["sd15", "sdxl", "sana"])
def test_window_excluding_every_step_is_bit_identical_to_off(backbone):
    pipe, kwargs = _pipe(backbone)
    off = _image(pipe, kwargs)
    pipe.scheduler.set_timesteps(kwargs["num_inference_steps"])
    progress = 1 - pipe.scheduler.timesteps.float() / pipe.scheduler.config.num_train_timesteps
    last = float(progress.max())
    assert last < 1.0
    with pladis.enabled(pipe, start=(last + 1.0) / 2, end=1.0):  # a window after the last step
        assert np.array_equal(_image(pipe, kwargs), off)
    with pladis.enabled(pipe, start=0.0, end=1.0):
        assert not np.array_equal(_image(pipe, kwargs), off)


def test_window_acts_exactly_on_the_steps_inside():
    pipe, kwargs = _pipe("sd15")
    pipe.scheduler.set_timesteps(kwargs["num_inference_steps"])
    timesteps = pipe.scheduler.timesteps.tolist()
    handle = pladis.apply(pipe, start=0.0, end=0.5)
    proc = next(p for p in pipe.unet.attn_processors.values() if isinstance(p, pladis.PLADISAttnProcessor))
    seen = []
    hook = pipe.unet.register_forward_hook(lambda m, a, o: seen.append(proc.is_active()))
    windowed = _image(pipe, kwargs)
    hook.remove()
    assert seen == [1 - t / 1000 <= 0.5 for t in timesteps] and True in seen and False in seen
    handle.remove()
    off = _image(pipe, kwargs)
    with pladis.enabled(pipe):
        full = _image(pipe, kwargs)
    assert not np.array_equal(windowed, off) and not np.array_equal(windowed, full)
    # remove() also took the timestep hook away
    assert not pipe.unet._forward_pre_hooks


@pytest.mark.parametrize("start,end", [(-0.1, 0.5), (0.2, 1.5), (0.8, 0.2)])
def test_bad_window_raises_and_changes_nothing(start, end):
    pipe, _ = _pipe("sd15")
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError, match="start"):
        pladis.apply(pipe, start=start, end=end)
    assert dict(pipe.unet.attn_processors) == before and not pipe.unet._forward_pre_hooks


@pytest.mark.parametrize("backbone", ["sd15", "sana"])
def test_window_reads_a_positional_timestep_at_its_place(backbone):
    """Custom loops may pass the timestep positionally: 2nd for a UNet, 3rd for SANA's transformer."""
    pipe, _ = _pipe(backbone)
    denoiser = pipe.unet if backbone == "sd15" else pipe.transformer
    handle = pladis.apply(pipe, start=0.5, end=1.0)
    proc = next(p for p in denoiser.attn_processors.values() if isinstance(p, pladis.PLADISAttnProcessor))
    latents = torch.randn(1, denoiser.config.in_channels, 8, 8)
    text_dim = denoiser.config.cross_attention_dim if backbone == "sd15" else denoiser.config.caption_channels
    text = torch.randn(1, 4, text_dim)
    for t, active in ((999, False), (100, True)):
        timestep = torch.tensor([t])
        args = (latents, timestep, text) if backbone == "sd15" else (latents, text, timestep)
        with torch.no_grad():
            denoiser(*args)
        assert handle.window.progress == pytest.approx(1 - t / 1000) and proc.is_active() is active
    handle.remove()


@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize("bad", ["0.5", None, torch.tensor([0.1, 0.2]), 10**400])
def test_a_window_bound_that_is_no_number_names_the_parameter(name, bad):
    pipe, _ = _pipe("sd15")
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        pladis.apply(pipe, **{name: bad})
    assert dict(pipe.unet.attn_processors) == before and not pipe.unet._forward_pre_hooks


def test_step_window_has_a_readable_repr():
    from pladis.processor import StepWindow

    window = StepWindow(0.25, 0.75)
    assert repr(window) == "StepWindow(start=0.25, end=0.75, not yet called)"
    window.observe(torch.tensor([500]))
    assert repr(window) == "StepWindow(start=0.25, end=0.75, progress=0.500)"
