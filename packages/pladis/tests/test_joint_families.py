"""PLADIS on every joint-attention family's tiny model (flux, flux2, sd3, qwen-image): the contract."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import pladis
from pladis.adapters import default_registry
from pladis.intercept import InterceptProcessor

FAMILIES = {
    # backbone: (expected modules, group -> the modules of that group)
    "flux": {"double": ["transformer_blocks.0.attn", "transformer_blocks.1.attn"],
             "single": ["single_transformer_blocks.0.attn", "single_transformer_blocks.1.attn"]},
    "flux2": {"double": ["transformer_blocks.0.attn", "transformer_blocks.1.attn"],
              "single": ["single_transformer_blocks.0.attn", "single_transformer_blocks.1.attn"]},
    "sd3": {"joint": ["transformer_blocks.0.attn", "transformer_blocks.1.attn"]},
    "qwen-image": {"joint": ["transformer_blocks.0.attn", "transformer_blocks.1.attn"]},
}
PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    spec = default_registry().get(request.param).spec
    pipe = spec.tiny(seed=0)
    return request.param, spec, pipe


def _images(pipe, spec, **overrides):
    kwargs = {**spec.tiny_call_kwargs, **overrides}
    return pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images


def _count_calls(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls, handle


def test_scale_zero_bit_identical_scale_two_different_no_extra_calls(family):
    name, spec, pipe = family
    calls, counter = _count_calls(pipe.transformer)
    try:
        base = _images(pipe, spec)
        n_base = len(calls)
        with pladis.enabled(pipe, scale=0.0) as handle:
            assert handle.adapter.name == name
            assert np.array_equal(_images(pipe, spec), base)
        with pladis.enabled(pipe, scale=2.0):
            calls.clear()
            changed = _images(pipe, spec)
            assert len(calls) == n_base  # no extra denoiser calls
        assert np.isfinite(changed).all() and np.abs(changed - base).max() > 1e-3
        assert np.array_equal(_images(pipe, spec), base)  # removed
    finally:
        counter.remove()


def test_exactly_the_declared_modules_and_remove_restores(family):
    name, _, pipe = family
    model = pipe.transformer
    processors = dict(model.attn_processors)
    pre_hooks, hooks = dict(model._forward_pre_hooks), dict(model._forward_hooks)
    groups = FAMILIES[name]
    everything = [m for group in groups.values() for m in group]
    handle = pladis.apply(pipe)
    wrapped = sorted(n.removesuffix(".processor") for n, p in model.attn_processors.items()
                     if isinstance(p, InterceptProcessor))
    assert wrapped == sorted(everything) == sorted(handle.layer_names)
    for group, modules in groups.items():
        pladis.apply(pipe, layers=group)
        wrapped = sorted(n.removesuffix(".processor") for n, p in model.attn_processors.items()
                         if isinstance(p, InterceptProcessor))
        assert wrapped == sorted(modules)
    pladis.apply(pipe, layers=1)
    assert all(".1.attn" in n for n in model._pladis_handle.layer_names)
    assert pladis.remove(pipe)
    assert all(model.attn_processors[n] is p for n, p in processors.items())
    assert dict(model._forward_pre_hooks) == pre_hooks and dict(model._forward_hooks) == hooks


def test_sd3_image_only_attn2_stays_self_attention():
    pipe = default_registry().get("sd3").spec.tiny(seed=0)
    attn2 = pipe.transformer.transformer_blocks[0].attn2
    original = attn2.processor
    with pladis.enabled(pipe):
        assert attn2.processor is original


def test_step_window(family):
    _, spec, pipe = family
    base = _images(pipe, spec)
    with pladis.enabled(pipe):
        full = _images(pipe, spec)
    with pladis.enabled(pipe, start=1.0, end=1.0):  # no step of the 2-step run has t = 0
        assert np.array_equal(_images(pipe, spec), base)
    with pladis.enabled(pipe, start=0.0, end=0.0):  # only the first step (t = T)
        first = _images(pipe, spec)
    assert np.abs(first - base).max() > 1e-4 and np.abs(first - full).max() > 1e-5


def _denoiser_inputs(pipe, spec):
    """The keyword arguments of the pipeline's first denoiser call."""
    captured = {}

    def grab(module, args, kwargs):
        if not captured:
            captured.update(kwargs)

    handle = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        _images(pipe, spec, num_inference_steps=1)
    finally:
        handle.remove()
    return captured


def _cast(value, dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_close(family, dtype):
    _, spec, pipe = family
    inputs = _denoiser_inputs(pipe, spec)
    model = copy.deepcopy(pipe.transformer).to(dtype)
    half_inputs = {k: _cast(v, dtype) for k, v in inputs.items()}
    with torch.no_grad(), pladis.enabled(model, backbone=spec.name):
        out = model(**half_inputs)[0]
    with torch.no_grad(), pladis.enabled(pipe.transformer):
        ref = pipe.transformer(**inputs)[0]
    assert out.dtype == dtype and bool(out.isfinite().all())
    assert torch.allclose(out.float(), ref, atol=0.1 if dtype == torch.bfloat16 else 0.02)


def test_qwen_padded_text_keys_are_excluded():
    """A prompt padded with garbage tokens (masked) gives the same output as the prompt alone, with PLADIS."""
    spec = default_registry().get("qwen-image").spec
    pipe = spec.tiny(seed=0)
    inputs = _denoiser_inputs(pipe, spec)
    text = inputs["encoder_hidden_states"]
    mask = inputs.get("encoder_hidden_states_mask")
    mask = torch.ones(text.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
    padded = dict(inputs)
    padded["encoder_hidden_states"] = torch.cat([text, 5 * torch.randn(text.shape[0], 6, text.shape[2])], 1)
    padded["encoder_hidden_states_mask"] = torch.cat([mask, torch.zeros(text.shape[0], 6, dtype=torch.bool)], 1)
    model = pipe.transformer
    with torch.no_grad(), pladis.enabled(model, backbone="qwen-image", scale=2.0):
        alone = model(**{**inputs, "encoder_hidden_states_mask": mask})[0]
        with_padding = model(**padded)[0]
    with torch.no_grad():
        dense = model(**padded)[0]
    assert torch.allclose(alone, with_padding, atol=1e-5, rtol=0)
    assert not torch.allclose(alone, dense, atol=1e-4)


def test_sd3_pag_pipeline_composes_with_pladis():
    """StableDiffusion3PAGPipeline (PAG on block 1) + PLADIS: one transformer call per step as PAG alone,
    a different image, and PLADIS's wrappers back in place after the call."""
    spec = default_registry().get("sd3").spec
    pipe = spec.tiny(seed=0, pag=True)
    kwargs = {**spec.tiny_call_kwargs, "pag_scale": 3.0}
    calls, counter = _count_calls(pipe.transformer)
    try:
        pag = pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images
        n_pag = len(calls)
        with pladis.enabled(pipe) as handle:
            calls.clear()
            both = pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).images
            assert len(calls) == n_pag and handle.active
    finally:
        counter.remove()
    assert np.isfinite(both).all() and np.abs(both - pag).max() > 1e-3


@pytest.mark.parametrize("backbone", ["flux", "qwen-image"])
def test_attention_map_recorders_leave_the_images_unchanged(backbone):
    """The CLI's ``maps`` recorders on joint models: same images as PLADIS on / off, one image × text map
    per layer (the conditional call only: Qwen-Image's negative-prompt call is left out)."""
    from pladis.cli._attention_maps import AttentionMapStore, install_recorders

    spec = default_registry().get(backbone).spec
    pipe = spec.tiny(seed=0)
    base = _images(pipe, spec)
    with pladis.enabled(pipe):
        on = _images(pipe, spec)
    for baseline, expected in ((True, base), (False, on)):
        store = AttentionMapStore()
        handle = pladis.apply(pipe)
        install_recorders(handle, store, baseline=baseline)
        try:
            assert np.array_equal(_images(pipe, spec), expected)
        finally:
            handle.remove()
        assert sorted(store.sums) == sorted(handle.layer_names)
        assert store.steps == spec.tiny_call_kwargs["num_inference_steps"]
        maps = store.maps(32, 32)
        assert maps.ndim == 3 and bool(maps.isfinite().all())
        if baseline:  # dense weights: a block of rows that sum to 1 over all keys
            block = next(iter(store.sums.values())) / store.steps
            assert bool((maps >= 0).all()) and bool((block.sum(-1) <= 1 + 1e-5).all())


@pytest.mark.parametrize("backbone", ["flux", "flux2", "qwen-image", "sd3"])
def test_the_adapter_kit_contract(backbone):
    from pladis_registry.testing import check_adapter

    check_adapter(default_registry().get(backbone).spec)
