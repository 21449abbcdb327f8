"""The contract test catches what it promises to: each broken adapter or PLADIS behaviour fails it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("diffusers")

import pladis  # noqa: E402
from pladis_adapter_sd15 import SPEC  # noqa: E402
from pladis_registry.testing import check_adapter, cross_attention_names, module_state  # noqa: E402

FAST = {"presets": ["fast"]}


def _patch_apply(monkeypatch: pytest.MonkeyPatch, after: Any) -> None:
    """Make ``pladis.apply`` (as check_adapter calls it) do something extra after applying."""
    real = pladis.apply

    def patched(pipe: Any, **settings: Any) -> Any:
        return after(pipe, real(pipe, **settings), settings)

    monkeypatch.setattr(pladis, "apply", patched)


def test_the_sd15_adapter_passes_and_module_state_sees_processor_and_hook_changes() -> None:
    check_adapter(SPEC, **FAST)
    pipe = SPEC.tiny(seed=0)
    before = module_state(pipe.unet)
    handle = pladis.apply(pipe, scale=2.0)
    after = module_state(pipe.unet)
    assert {n for n in before if before[n][0] is not after[n][0]} == cross_attention_names(pipe.unet)
    handle.remove()
    assert all(before[n][0] is module_state(pipe.unet)[n][0] for n in before)


def test_a_wrong_layer_group_is_caught() -> None:
    mid_is_up = dataclasses.replace(SPEC, name="broken", layer_groups=dict(SPEC.layer_groups, mid=r"^up_blocks\."))
    with pytest.raises(AssertionError, match=r"module 'mid_block\.attentions\.0\.\S+' is in none of the layer groups"):
        check_adapter(mid_is_up, **FAST)
    empty = dataclasses.replace(SPEC, name="broken", layer_groups=dict(SPEC.layer_groups, head=r"^head\."))
    with pytest.raises(AssertionError, match=r"layer group 'head' selects nothing on the tiny pipeline"):
        check_adapter(empty, **FAST)


def test_a_module_outside_the_declared_ones_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook_self_attention(pipe: Any, handle: Any, settings: Any) -> Any:
        pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.register_forward_hook(lambda *a: None)
        return handle

    _patch_apply(monkeypatch, hook_self_attention)
    with pytest.raises(AssertionError, match=r"changed modules outside the declared ones: \['down_blocks\.0\.attentions"):
        check_adapter(SPEC, **FAST)


def test_declared_modules_must_be_what_pladis_takes() -> None:
    def only_mid(denoiser: Any) -> set[str]:
        return {n for n in cross_attention_names(denoiser) if n.startswith("mid_block.")}

    with pytest.raises(AssertionError, match=r"PLADIS took \['down_blocks.*differently from the declared"):
        check_adapter(SPEC, text_attention=only_mid, **FAST)


def test_scale_zero_that_is_not_off_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pladis.apply
    monkeypatch.setattr(pladis, "apply", lambda pipe, **s: real(pipe, **dict(s, scale=s.get("scale", 2.0) or 0.5)))
    with pytest.raises(AssertionError, match=r"preset 'fast'.*λ = 0 is not bit-identical"):
        check_adapter(SPEC, **FAST)


def test_a_remove_that_leaves_processors_behind_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def forget_remove(pipe: Any, handle: Any, settings: Any) -> Any:
        if settings.get("scale") == 2.0:
            monkeypatch.setattr(handle, "remove", lambda: None)
        return handle

    _patch_apply(monkeypatch, forget_remove)
    with pytest.raises(AssertionError, match=r"remove\(\) did not restore the original processors/hooks of"):
        check_adapter(SPEC, **FAST)


def test_an_extra_denoiser_call_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def call_twice(pipe: Any, handle: Any, settings: Any) -> Any:
        if settings.get("scale") == 2.0:
            forward, inner = pipe.unet.forward, []

            def twice(*args: Any, **kwargs: Any) -> Any:
                if not inner:  # one more call through __call__ (counted), then the real one
                    inner.append(1)
                    try:
                        pipe.unet(*args, **kwargs)
                    finally:
                        inner.pop()
                return forward(*args, **kwargs)

            monkeypatch.setattr(pipe.unet, "forward", twice)
        return handle

    _patch_apply(monkeypatch, call_twice)
    with pytest.raises(AssertionError, match=r"λ = 2 made \d+ denoiser calls instead of \d+"):
        check_adapter(SPEC, **FAST)


def test_a_spec_without_tiny_factory_or_with_unknown_presets_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"declares no tiny factory"):
        check_adapter(dataclasses.replace(SPEC, tiny=None))
    with pytest.raises(AssertionError, match=r"presets \['nope'\] are not declared"):
        check_adapter(SPEC, presets=["nope"])


def test_a_non_deterministic_tiny_pipeline_is_caught() -> None:
    import torch

    from pladis_adapter_pixart import SPEC as PIXART

    def with_dropout(seed: int = 0) -> Any:
        pipe = PIXART.tiny(seed=seed)
        pipe.text_encoder.train()
        for module in pipe.text_encoder.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.1
        return pipe

    with pytest.raises(AssertionError, match=r"two calls with the same seed differ.*training mode"):
        check_adapter(PIXART, tiny=with_dropout)


def test_declared_modules_of_an_interception_adapter_are_its_layer_groups_attention_modules() -> None:
    from pladis_registry.testing import declared_attention_names

    pipe = SPEC.tiny(seed=0)
    joint_style = dataclasses.replace(SPEC, name="joint-style", extra={"attention": {"kind": "cross"}},
                                      layer_groups={"mid": r"^mid_block\..*\.attn[12]$"})
    names = declared_attention_names(joint_style, pipe.unet)
    assert names and all(n.startswith("mid_block.") for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == {"attn1", "attn2"}  # by location, not by the cross flag
    assert declared_attention_names(SPEC, pipe.unet) == cross_attention_names(pipe.unet)
