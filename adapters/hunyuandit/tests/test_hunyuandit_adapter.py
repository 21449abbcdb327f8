"""HunyuanDiT adapter: the contract on the tiny pipeline; diffusers' HunyuanAttnProcessor2_0 (norms, RoPE on
the image queries) with only its attention product swapped for a float64 Eq. 15 as the oracle; masks in
both branches. (The pipeline passes attn2 no mask: the transformer swaps padded text tokens for its
learned padding embedding before attn2.)"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import torch.nn.functional as F  # noqa: E402

import pladis  # noqa: E402
from pladis_adapter_hunyuandit import SPEC, tiny_pipeline  # noqa: E402
from pladis_registry.testing import check_adapter, isolated_registry  # noqa: E402


@pytest.fixture(scope="module")
def pipe() -> Any:
    return tiny_pipeline(0)


def test_adapter_contract() -> None:
    check_adapter(SPEC)


def test_pag_pipeline_is_served() -> None:
    pag = tiny_pipeline(0, pag=True)
    handle = pladis.apply(pag, registry=isolated_registry(SPEC))
    assert handle.adapter is SPEC and set(handle.layer_names) == {"blocks.0.attn2", "blocks.1.attn2"}
    handle.remove()


def _eq15_float64(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=2.0):
    """Eq. 15 in float64 with the ``entmax`` package: ((1−λ)·softmax(S) + λ·entmax15(S))·V."""
    from entmax import entmax15

    scores = query.double() @ key.double().transpose(-1, -2) / query.shape[-1] ** 0.5
    if attn_mask is not None:
        scores = scores + (attn_mask.double() if attn_mask.is_floating_point()
                           else torch.zeros_like(scores).masked_fill(~attn_mask, float("-inf")))
    weights = (1 - scale) * scores.softmax(-1) + scale * entmax15(scores, dim=-1)
    return (weights @ value.double()).to(query.dtype)


def _attn2_call(attn: Any, seed: int = 0, mask: torch.Tensor | None = None) -> dict[str, Any]:
    from diffusers.models.embeddings import get_2d_rotary_pos_embed

    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 16, attn.to_q.in_features, generator=generator)
    text = torch.randn(2, 12, attn.to_k.in_features, generator=generator)
    rope = get_2d_rotary_pos_embed(attn.to_q.out_features // attn.heads, ((0, 0), (4, 4)), (4, 4))
    return {"hidden_states": hidden, "encoder_hidden_states": text, "image_rotary_emb": rope, "attention_mask": mask}


def test_attn2_is_diffusers_processor_with_only_the_weights_replaced(pipe: Any, monkeypatch) -> None:
    handle = pladis.apply(pipe, registry=isolated_registry(SPEC))
    try:
        attn = handle.modules["blocks.0.attn2"]
        call = _attn2_call(attn)
        with torch.no_grad():
            got = attn(**call)
            dense = handle.originals["blocks.0.attn2"](attn, **call)
            monkeypatch.setattr(F, "scaled_dot_product_attention", _eq15_float64)
            expected = handle.originals["blocks.0.attn2"](attn, **call)
    finally:
        monkeypatch.undo()
        handle.remove()
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    assert (got - dense).abs().max() > 1e-3


def test_a_mask_removes_keys_from_both_branches(pipe: Any) -> None:
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, 7:] = False
    for scale in (1.0, 2.0):  # λ = 1: the entmax branch alone; λ = 2: both
        handle = pladis.apply(pipe, scale=scale, registry=isolated_registry(SPEC))
        attn = handle.modules["blocks.1.attn2"]
        call = _attn2_call(attn, mask=mask[:, None, :])
        changed = dict(call, encoder_hidden_states=call["encoder_hidden_states"].clone())
        changed["encoder_hidden_states"][:, 7:] += 3.0
        with torch.no_grad():
            a, b = attn(**call), attn(**changed)
            unmasked = attn(**dict(changed, attention_mask=None))
        handle.remove()
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        assert (unmasked - a).abs().max() > 1e-4
