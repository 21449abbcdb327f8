"""apply / remove / enabled on new-style attention (SDPA interception) and on two-denoiser pipelines:
failures leave every denoiser as it was, diffusers' fused-QKV stash is cleaned, handles describe
themselves in one line, and IP-Adapter processors are refused before anything changes."""

from __future__ import annotations

import dataclasses

import pytest

import pladis
from pladis._checks import PLADISSettings
from pladis.adapters import default_registry
from pladis.apply import _processors_of
from pladis.intercept import InterceptProcessor, apply_intercept, attention_modules


def _tiny(backbone, **kwargs):
    spec = default_registry().get(backbone).spec
    return spec, (spec.tiny(seed=0, **kwargs) if kwargs else spec.tiny(seed=0))


def _same(model, processors):
    """Every attention module of ``model`` carries the very processor object of ``processors``."""
    now = _processors_of(model)
    return now.keys() == processors.keys() and all(now[name] is p for name, p in processors.items())


def test_a_failing_apply_on_a_two_denoiser_pipeline_leaves_both_as_they_were():
    _, pipe = _tiny("wan", two_transformers=True)
    first, second = pipe.transformer, pipe.transformer_2
    earlier = pladis.apply(first, scale=1.0)
    processors = [_processors_of(first), _processors_of(second)]
    hooks = [dict(first._forward_pre_hooks), dict(second._forward_pre_hooks)]
    second.set_attention_backend("flex")  # a back-end PLADIS refuses to intercept (not torch's SDPA)
    try:
        with pytest.raises(ValueError, match="attention back-end 'flex'"):
            pladis.apply(pipe, scale=3.0)
    finally:  # set_attention_backend also sets diffusers' process-wide active back-end
        second.set_attention_backend("native")
        second.reset_attention_backend()
    assert earlier.active and first._pladis_handle is earlier
    for model, before, hook in zip((first, second), processors, hooks, strict=True):
        assert _same(model, before)
        assert len(model._forward_pre_hooks) == len(hook)
    assert not hasattr(second, "_pladis_handle")


def test_a_two_denoiser_handle_has_settings_and_a_one_line_repr():
    _, pipe = _tiny("wan", two_transformers=True)
    handle = pladis.apply(pipe, scale=1.5)
    try:
        assert handle.settings == PLADISSettings(1.5, 1.5, 1.0, "auto")
        text = repr(handle)
        assert "\n" not in text and len(text) < 300 and "of 2 denoisers" in text and "λ=1.5" in text
    finally:
        handle.remove()


def test_intercept_handles_have_the_settings_property():
    _, pipe = _tiny("flux")
    handle = pladis.apply(pipe, scale=2.5, alpha=2.0)
    try:
        assert handle.settings == PLADISSettings(2.5, 2.0, 1.0, "auto")
    finally:
        handle.remove()


def test_fused_qkv_stash_gets_the_originals_back_and_remove_sweeps_orphans():
    spec, pipe = _tiny("sd3")
    model = pipe.transformer
    originals = _processors_of(model)
    pladis.apply(pipe)
    model.fuse_qkv_projections()
    assert pladis.remove(pipe)
    assert not any(isinstance(p, InterceptProcessor) for p in model.original_attn_processors.values())
    model.unfuse_qkv_projections()
    assert _same(model, originals)
    # a PLADIS wrapper left without a handle (put back by hand) is taken out by pladis.remove
    handle = pladis.apply(pipe)
    name, wrapper = next(iter(handle.processors.items()))
    handle.remove()
    handle.modules[name].set_processor(wrapper)
    assert pladis.remove(pipe) and _processors_of(model)[name] is originals[name]


def test_ip_adapter_processors_are_refused_before_anything_changes():
    from diffusers.models.transformers.transformer_flux import FluxIPAdapterAttnProcessor

    _, pipe = _tiny("flux")
    model = pipe.transformer
    inner = model.config.num_attention_heads * model.config.attention_head_dim
    for block in model.transformer_blocks:
        block.attn.set_processor(FluxIPAdapterAttnProcessor(inner, inner))
    before, state = _processors_of(model), set(model.state_dict())
    with pytest.raises(ValueError, match="IP-Adapter"):
        pladis.apply(pipe)
    assert _same(model, before) and set(model.state_dict()) == state


def test_an_intercept_apply_over_a_legacy_handle_wraps_the_genuine_processors():
    spec, pipe = _tiny("sd15")
    unet = pipe.unet
    originals = _processors_of(unet)
    pladis.apply(pipe)
    cross = dataclasses.replace(spec, extra={"attention": {"kind": "cross"}}, layer_groups={"cross": r"attn2$"})
    handle = apply_intercept(unet, cross, attention_modules(unet, cross), scale=2.0, alpha=1.5, temperature=1.0,
                             backend="auto", window=None)
    assert all(original is originals[name] for name, original in handle.originals.items())
    handle.remove()
    assert _same(unet, originals)
