"""pladis_attention against a literal two-attention implementation of Eq. 15."""

from __future__ import annotations

import math

import entmax as oracle
import pytest
import torch
import torch.nn.functional as F

import pladis

SPARSE = {1.5: oracle.entmax15, 2.0: oracle.sparsemax}


def _qkv(b=2, h=3, nq=16, nk=11, d=8, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen).to(dtype) for n in (nq, nk, nk)]


def _literal_eq15(q, k, v, scale, alpha, temperature=1.0, bias=None):
    """Two separate attentions, as the paper writes Eq. 15."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    dense_logits = s if bias is None else s + bias
    sparse_logits = s / temperature if bias is None else s / temperature + bias
    at_dense = torch.softmax(dense_logits, -1) @ v
    if alpha in SPARSE:
        sparse = SPARSE[alpha](sparse_logits, dim=-1)
    else:
        sparse = oracle.entmax_bisect(sparse_logits.double(), alpha, n_iter=200).float()
    at_sparse = sparse @ v
    return at_dense + scale * (at_sparse - at_dense)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.25, 1.75])
@pytest.mark.parametrize("scale", [-1.0, 0.5, 2.0, 3.5])
def test_matches_literal_two_attention_eq15(alpha, scale):
    q, k, v = _qkv()
    out = pladis.pladis_attention(q, k, v, scale=scale, alpha=alpha)
    torch.testing.assert_close(out, _literal_eq15(q, k, v, scale, alpha), atol=2e-5, rtol=1e-5)


def test_temperature_divides_the_sparse_logits_only():
    q, k, v = _qkv(seed=1)
    out = pladis.pladis_attention(q, k, v, scale=2.0, alpha=1.5, temperature=0.5)
    torch.testing.assert_close(out, _literal_eq15(q, k, v, 2.0, 1.5, temperature=0.5), atol=2e-5, rtol=1e-5)
    assert not torch.allclose(out, pladis.pladis_attention(q, k, v, scale=2.0, alpha=1.5), atol=1e-4)


def test_scale_zero_equals_sdpa():
    q, k, v = _qkv(seed=2)
    out = pladis.pladis_attention(q, k, v, scale=0.0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_scale_one_is_pure_sparse_attention(alpha):
    q, k, v = _qkv(seed=3)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    expected = SPARSE[alpha](s, dim=-1) @ v
    torch.testing.assert_close(pladis.pladis_attention(q, k, v, scale=1.0, alpha=alpha), expected, atol=2e-6, rtol=1e-5)


def test_boolean_and_additive_masks_match_reference():
    q, k, v = _qkv(b=2, h=3, nk=11, seed=4)
    keep = torch.ones(2, 1, 1, 11, dtype=torch.bool)
    keep[0, ..., 7:] = False
    keep[1, ..., 3:] = False
    bias = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    out_bool = pladis.pladis_attention(q, k, v, attn_mask=keep)
    out_float = pladis.pladis_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(out_bool, out_float, atol=0, rtol=0)
    torch.testing.assert_close(out_bool, _literal_eq15(q, k, v, 2.0, 1.5, bias=bias), atol=2e-5, rtol=1e-5)
    # dense branch agrees with SDPA's own masking
    torch.testing.assert_close(
        pladis.pladis_attention(q, k, v, scale=0.0, attn_mask=keep),
        F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
        atol=1e-6,
        rtol=1e-5,
    )


@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.25])
def test_sana_minus_10000_bias_is_a_real_mask_in_the_sparse_branch(alpha):
    q, k, v = _qkv(b=1, h=2, nk=12, seed=5)
    text_mask = torch.ones(1, 12)
    text_mask[:, 6:] = 0
    sana_bias = ((1 - text_mask) * -10000.0).view(1, 1, 1, 12)
    out = pladis.pladis_attention(q, k, v, scale=1.0, alpha=alpha, attn_mask=sana_bias)
    truncated = pladis.pladis_attention(q, k[..., :6, :], v[..., :6, :], scale=1.0, alpha=alpha)
    torch.testing.assert_close(out, truncated, atol=1e-6, rtol=1e-5)
    weights = pladis.attention.pladis_weights(q, k, scale=1.0, alpha=alpha, attn_mask=sana_bias)
    assert (weights[..., 6:] == 0).all()


def test_fully_masked_rows_give_zeros_not_nan():
    q, k, v = _qkv(b=1, h=1, nq=4, nk=5, seed=6)
    keep = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    keep[..., 2, :] = False
    out = pladis.pladis_attention(q, k, v, attn_mask=keep)
    assert torch.isfinite(out).all()
    assert torch.equal(out[..., 2, :], torch.zeros(1, 1, 8))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    q, k, v = _qkv(seed=7)
    out = pladis.pladis_attention(q.to(dtype), k.to(dtype), v.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), pladis.pladis_attention(q, k, v), atol=5e-2, rtol=5e-2)


def test_rows_of_mixed_weights_sum_to_one_for_any_scale():
    q, k, _ = _qkv(seed=8)
    for scale in (-2.0, 0.0, 1.0, 2.0, 7.0):
        w = pladis.attention.pladis_weights(q, k, scale=scale)
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_computes_one_qk_and_one_weights_v_matmul(monkeypatch, backend):
    calls = []
    real = torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda a, b: calls.append((a.shape, b.shape)) or real(a, b))
    q, k, v = _qkv(nq=16, nk=11, d=8)
    pladis.pladis_attention(q, k, v, backend=backend)
    if backend == "eager":
        assert calls == [(q.shape, (2, 3, 8, 11)), ((2, 3, 16, 11), v.shape)]
    else:  # keys-major: Sᵀ = K·Qᵀ, then Mᵀ·V
        assert calls == [(k.shape, (2, 3, 8, 16)), ((2, 3, 16, 11), v.shape)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 2.5}, r"alpha must be 1 \(softmax\) or in \[1.01, 2\]"),
        ({"scale": float("inf")}, r"scale \(λ\) must be a finite"),
        ({"scale": float("nan")}, r"scale \(λ\) must be a finite"),
        ({"temperature": 0.0}, r"temperature must be in \[1e-06, 1e\+06\] \(default 1.0\); got 0.0"),
        ({"temperature": float("inf")}, r"temperature must be in \[1e-06, 1e\+06\]"),
        ({"temperature": float("nan")}, r"temperature must be in \[1e-06, 1e\+06\]"),
        ({"temperature": 1e30}, r"temperature must be in \[1e-06, 1e\+06\]"),  # gave NaN (eager), rows summing to −1 (native)
        ({"temperature": 1e-30}, r"temperature must be in \[1e-06, 1e\+06\]"),  # gave rows summing to 1.7e38
        ({"alpha": "1.5"}, r"alpha must be a real number; got '1.5'"),
        ({"alpha": torch.tensor(True)}, r"alpha must be a real number"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_parameter(kwargs, message):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=message):
        pladis.pladis_attention(q, k, v, **kwargs)
    with pytest.raises(ValueError, match=message):
        pladis.attention.pladis_weights(q, k, **kwargs)


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_temperatures_at_the_ends_of_the_range_give_normalised_weights(backend):
    q, k, _ = _qkv()
    for temperature in (1e-6, 1e6):
        weights = pladis.attention.pladis_weights(q, k, scale=1.0, temperature=temperature, backend=backend)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)
    # T = 1e6 flattens the sparse map to uniform; T = 1e-6 sharpens it to the argmax
    flat = pladis.attention.pladis_weights(q, k, scale=1.0, temperature=1e6, backend=backend)
    torch.testing.assert_close(flat, torch.full_like(flat, 1 / k.shape[-2]), atol=1e-5, rtol=0)
    sharp = pladis.attention.pladis_weights(q, k, scale=1.0, temperature=1e-6, backend=backend)
    hot = F.one_hot((q @ k.mT).argmax(-1), k.shape[-2]).float()
    torch.testing.assert_close(sharp, hot, atol=1e-6, rtol=0)


def test_numpy_and_tensor_scalars_are_accepted_as_settings():
    np = pytest.importorskip("numpy")
    q, k, v = _qkv()
    expected = pladis.pladis_attention(q, k, v, scale=2.0, alpha=1.5, temperature=1.0)
    for alpha in (np.float32(1.5), np.float64(1.5), torch.tensor(1.5)):
        got = pladis.pladis_attention(q, k, v, scale=np.int64(2), alpha=alpha, temperature=np.float32(1.0))
        assert torch.equal(got, expected)


@pytest.mark.parametrize("backend", ["auto", "eager", "native", "compile"])
def test_no_queries_or_no_keys_behave_as_sdpa(backend):
    q, k, v = _qkv()
    for nq, nk in ((0, 11), (16, 0), (0, 0)):
        query, key, value = q[..., :nq, :], k[..., :nk, :], v[..., :nk, :]
        expected = torch.nn.functional.scaled_dot_product_attention(query, key, value)
        got = pladis.pladis_attention(query, key, value, backend=backend)
        assert got.shape == expected.shape and torch.equal(got, expected)  # empty, or zeros
        assert pladis.attention.pladis_weights(query, key, backend=backend).shape == (*q.shape[:-2], nq, nk)
    assert pladis.entmax(torch.zeros(3, 0)).shape == (3, 0)
    with pytest.raises(ValueError, match="backend must be one of"):
        pladis.pladis_attention(q[..., :0, :], k, v, backend=backend + "x")


def test_shape_mismatches_raise_value_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="head dim"):
        pladis.pladis_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="number of keys"):
        pladis.pladis_attention(q, k, v[..., :5, :])
    with pytest.raises(ValueError, match="same number"):
        pladis.pladis_attention(q[0], k, v)
    with pytest.raises(ValueError, match="do not broadcast"):
        pladis.pladis_attention(q, k[:1].expand(2, 3, 11, 8)[:, :2], v[:, :2])
    with pytest.raises(ValueError, match="attn_mask of shape"):
        pladis.pladis_attention(q, k, v, attn_mask=torch.zeros(5, 5))
