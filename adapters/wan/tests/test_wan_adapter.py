"""Wan adapter: the contract on the tiny text-to-video pipeline, the text-only rule of image-to-video
(the image branch of attn2 stays dense), masks in both branches, and Wan 2.2's two transformers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("ftfy")

import pladis  # noqa: E402
from pladis.intercept import InterceptProcessor  # noqa: E402
from pladis_adapter_wan import SPEC, tiny_i2v_pipeline, tiny_pipeline  # noqa: E402
from pladis_adapter_wan.tiny import FAST_CALL_KWARGS, I2V_CALL_KWARGS  # noqa: E402
from pladis_registry.testing import check_adapter, isolated_registry  # noqa: E402

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def registry() -> Any:
    return isolated_registry(SPEC)


def _frames(pipe: Any, **call: Any) -> np.ndarray:
    return pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **call).frames


def test_adapter_contract() -> None:
    check_adapter(SPEC, presets=["480p", "720p"])


def test_presets_follow_the_model_cards() -> None:
    from diffusers import UniPCMultistepScheduler

    base = tiny_pipeline(0).scheduler.config
    for name, shift, size in (("480p", 3.0, (480, 832)), ("720p", 5.0, (720, 1280))):
        preset = SPEC.preset(name)
        scheduler = preset.make_scheduler(base)
        assert type(scheduler) is UniPCMultistepScheduler and scheduler.config.flow_shift == shift
        assert preset.call_kwargs() == {"guidance_scale": 5.0, "num_inference_steps": 50, "height": size[0],
                                        "width": size[1], "num_frames": 81}
    assert SPEC.preset("a14b").call_kwargs()["guidance_scale_2"] == 3.0
    assert SPEC.default_preset == "480p"


def _attn2_inputs(attn: Any, image_tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 8, attn.to_q.in_features, generator=generator)
    context = torch.randn(2, image_tokens + 512, attn.to_k.in_features, generator=generator)
    return hidden, context


def test_image_to_video_leaves_the_image_branch_dense(registry: Any) -> None:
    """attn2 output = to_out(text attention + image attention): with the image branch dense, PLADIS's
    change of the output is the same whatever the image tokens are."""
    pipe = tiny_i2v_pipeline(0)
    handle = pladis.apply(pipe, registry=registry)
    assert set(handle.layer_names) == {"blocks.0.attn2", "blocks.1.attn2"}
    attn = handle.modules["blocks.0.attn2"]
    assert attn.add_k_proj is not None  # the image branch exists
    hidden, context = _attn2_inputs(attn, 17, seed=0)
    other = context.clone()
    other[:, :17] = torch.randn(2, 17, context.shape[-1], generator=torch.Generator().manual_seed(1))
    handle.context.text_length = 512  # what the denoiser-level hook reads from encoder_hidden_states
    with torch.no_grad():
        changes = []
        for tokens in (context, other):
            on = attn(hidden, encoder_hidden_states=tokens)
            dense = handle.originals["blocks.0.attn2"](attn, hidden, encoder_hidden_states=tokens)
            changes.append(on - dense)
    handle.remove()
    assert changes[0].abs().max() > 1e-4  # PLADIS acts on the text call
    torch.testing.assert_close(changes[0], changes[1], atol=1e-5, rtol=0)


def test_image_to_video_pipeline_gets_pladis_on_text_calls_only(registry: Any, monkeypatch) -> None:
    from PIL import Image

    from pladis.kernels import backends

    pipe = tiny_i2v_pipeline(0)
    call = {**I2V_CALL_KWARGS, "image": Image.new("RGB", (32, 32), (200, 30, 30))}
    dense = _frames(pipe, **call)
    keys: list[int] = []
    original = backends.attention

    def recording(query, key, *args, **kwargs):
        keys.append(key.shape[-2])
        return original(query, key, *args, **kwargs)

    monkeypatch.setattr(backends, "attention", recording)
    with pladis.enabled(pipe, scale=0.0, registry=registry):
        off = _frames(pipe, **call)
    assert keys == [] and np.array_equal(off, dense)
    calls: list[int] = []
    hook = pipe.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    with pladis.enabled(pipe, scale=2.0, registry=registry):
        on = _frames(pipe, **call)
    hook.remove()
    assert keys == [512] * (len(calls) * 2)  # the text call of both attn2 per denoiser call, never the 17 image keys
    assert np.isfinite(on).all() and not np.array_equal(on, dense)


def test_masked_text_keys_are_out_of_both_branches(registry: Any) -> None:
    """A boolean mask passed to attn2 removes the masked keys from softmax and entmax alike: their
    embeddings no longer change the output. (diffusers' Wan pipelines pass none: the text is zero-padded
    to ``max_sequence_length`` and every key is attended, in the dense and the sparse branch alike.)"""
    pipe = tiny_pipeline(0)
    for scale in (1.0, 2.0):  # λ = 1: the α-entmax branch alone; λ = 2: both branches
        handle = pladis.apply(pipe, scale=scale, registry=registry)
        attn = handle.modules["blocks.1.attn2"]
        generator = torch.Generator().manual_seed(0)
        hidden = torch.randn(1, 8, attn.to_q.in_features, generator=generator)
        text = torch.randn(1, 16, attn.to_k.in_features, generator=generator)
        padded = text.clone()
        padded[:, 10:] = torch.randn(1, 6, text.shape[-1], generator=generator)
        mask = torch.zeros(1, 1, 1, 16, dtype=torch.bool)
        mask[..., :10] = True
        handle.context.text_length = 16
        with torch.no_grad():
            a = attn(hidden, encoder_hidden_states=text, attention_mask=mask)
            b = attn(hidden, encoder_hidden_states=padded, attention_mask=mask)
            unmasked = attn(hidden, encoder_hidden_states=padded)
        handle.remove()
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        assert (unmasked - b).abs().max() > 1e-4


def test_wan22_two_transformers_both_get_pladis(registry: Any) -> None:
    pipe = tiny_pipeline(0, two_transformers=True)
    before = {name: dict(model.attn_processors) for name, model in
              (("transformer", pipe.transformer), ("transformer_2", pipe.transformer_2))}
    calls = {"transformer": 0, "transformer_2": 0}
    hooks = [getattr(pipe, name).register_forward_pre_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
             for name in calls]
    call = {**FAST_CALL_KWARGS, "num_inference_steps": 4}
    dense = _frames(pipe, **call)
    dense_calls = dict(calls)
    assert dense_calls["transformer"] and dense_calls["transformer_2"]  # the boundary splits the steps

    handle = pladis.apply(pipe, registry=registry)
    assert set(handle.layer_names) == {"blocks.0.attn2", "blocks.1.attn2", "transformer_2.blocks.0.attn2",
                                       "transformer_2.blocks.1.attn2"}
    assert all(isinstance(p, InterceptProcessor) for p in handle.processors.values())
    both = _frames(pipe, **call)
    pladis.remove(pipe)
    for name, model in (("transformer", pipe.transformer), ("transformer_2", pipe.transformer_2)):
        assert all(model.attn_processors[k] is v for k, v in before[name].items())
    first_only = pladis.apply(pipe.transformer, backbone="wan", registry=registry)
    only = _frames(pipe, **call)
    first_only.remove()
    with pladis.enabled(pipe, scale=0.0, registry=registry):
        off = _frames(pipe, **call)
    for hook in hooks:
        hook.remove()
    assert np.array_equal(off, dense)
    assert np.isfinite(both).all() and not np.array_equal(both, dense)
    assert not np.array_equal(both, only)  # transformer_2's PLADIS changes the low-noise steps
    assert calls == {name: 4 * count for name, count in dense_calls.items()}  # no extra denoiser calls
    assert pipe.transformer_2.attn_processors.keys() == before["transformer_2"].keys()
    assert all(pipe.transformer_2.attn_processors[k] is v for k, v in before["transformer_2"].items())
