"""Numerics and bad arguments found by fuzzing the public API (issue 18, items 6–13), each pinned by a
test, and bounded, seeded property tests of the kind that found them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import pladis
from pladis import entmax, pladis_attention
from pladis.attention import mask_to_bias, pladis_weights
from pladis.kernels import compiled, native

HAS_NATIVE = native.usable(torch.device("cpu"))
CPU_BACKENDS = ["eager", "native"] if HAS_NATIVE else ["eager"]
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def entmax_oracle(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """α-entmax along the last dim in float64 by bisection on τ (Eq. 24), independent of the solver."""
    z = z.double()
    if alpha == 1.0:
        return torch.softmax(z, -1)
    top = (alpha - 1.0) * z.amax(-1, keepdim=True)
    lo, hi = top - 1.0, top
    for _ in range(200):
        mid = (lo + hi) / 2
        total = ((alpha - 1.0) * z - mid).clamp_min(0).pow(1 / (alpha - 1.0)).sum(-1, keepdim=True)
        lo, hi = torch.where(total > 1, mid, lo), torch.where(total > 1, hi, mid)
    p = ((alpha - 1.0) * z - lo).clamp_min(0).pow(1 / (alpha - 1.0))
    return p / p.sum(-1, keepdim=True)


def eq15_oracle(q, k, v, scale, alpha, temperature=1.0, bias=None):
    """Eq. 15 in float64 with the documented sparse logits: (S + b)/T for T ≤ 1, S/T + b above."""
    s = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    b = 0.0 if bias is None else bias.double()
    sparse_logits = (s + b) / temperature if temperature <= 1.0 else s / temperature + b
    weights = (1 - scale) * torch.softmax(s + b, -1) + scale * entmax_oracle(sparse_logits, alpha)
    return weights @ v.double()


def _qkv(shape=(1, 2, 9, 16), nk=7, dtype=torch.float32, seed_=0, spread=1.0):
    gen = torch.Generator().manual_seed(seed_)
    b, h, nq, d = shape
    q = torch.randn(b, h, nq, d, generator=gen) * spread
    k = torch.randn(b, h, nk, d, generator=gen)
    v = torch.randn(b, h, nk, d, generator=gen)
    return q.to(dtype), k.to(dtype), v.to(dtype)


# --- item 6: fp16 scores beyond fp16's range; bf16 accuracy ---------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("scale", [0.0, 2.0])
def test_fp16_scores_beyond_fp16_range_stay_finite(backend, scale):
    q = torch.full((1, 1, 4, 64), 100.0, dtype=torch.float16)  # scores 100·100·64/8 = 80000 > 65504
    k = torch.cat([q[:, :, :2], -q[:, :, :3]], dim=2)
    v = torch.randn(1, 1, 5, 64).to(torch.float16)
    out = pladis_attention(q, k, v, scale=scale, backend=backend)
    assert torch.isfinite(out).all()
    expected = eq15_oracle(q, k, v, scale, 1.5)
    torch.testing.assert_close(out.double(), expected, atol=2e-3, rtol=2e-3)
    if scale == 0.0:
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-3, rtol=1e-3)


def test_bf16_dense_limit_is_as_accurate_as_sdpa():
    q, k, v = _qkv((2, 4, 64, 64), nk=77, dtype=torch.bfloat16, spread=3.0)
    truth = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    ours = (pladis_attention(q, k, v, scale=0.0, backend="eager").double() - truth).abs().max()
    sdpa = (F.scaled_dot_product_attention(q, k, v).double() - truth).abs().max()
    assert ours <= 2 * sdpa


# --- item 7: α close to 1 ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1 + 1e-9, 1 + 1e-6, 1.005])
def test_alpha_close_to_one_is_refused_with_the_range(alpha):
    with pytest.raises(ValueError, match=r"alpha must be 1 \(softmax\) or in \[1.01, 2\]"):
        entmax(torch.tensor([[2.0, 1.0, 0.0, -1.0]]), alpha)
    with pytest.raises(ValueError, match="alpha"):
        pladis_attention(*_qkv(), alpha=alpha)


@pytest.mark.parametrize("alpha", [1.01, 1.02])
def test_the_smallest_accepted_alphas_are_accurate(alpha):
    z = torch.randn(200, 77, generator=torch.Generator().manual_seed(0)) * 3
    err = (entmax(z, alpha).double() - entmax_oracle(z, alpha)).abs().max()
    assert err < 1e-6


# --- item 8: an additive −10000 mask at small temperatures ------------------------------------------


@pytest.mark.parametrize("backend", [*CPU_BACKENDS, "differentiable"])
@pytest.mark.parametrize("temperature", [1e-6, 1e-3, 0.5, 1.0, 10.0, 1e6])
def test_a_minus_10000_mask_removes_keys_from_the_sparse_branch_at_every_temperature(backend, temperature):
    q, k, _ = _qkv(spread=10.0)  # score ranges of ~±40: S/T beyond 10000 for T ≤ 1e-3
    if backend == "differentiable":
        q.requires_grad_(True)
    mask = torch.zeros(7)
    mask[4:] = -10000.0
    weights = pladis_weights(q, k, scale=1.0, temperature=temperature, attn_mask=mask,
                             backend="eager" if backend == "differentiable" else backend)
    assert torch.equal(weights[..., 4:], torch.zeros_like(weights[..., 4:]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)


# --- item 9: NaN and +inf ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 1.25, 1.5, 2.0])
@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_entmax_gives_nan_rows_for_nan_or_plus_inf_as_softmax(alpha, poison):
    z = torch.tensor([[poison, 0.0, 1.0], [0.0, 1.0, 2.0], [float("-inf")] * 3])
    out = entmax(z, alpha)
    assert torch.isnan(out[0]).all()
    torch.testing.assert_close(out[1].double(), entmax_oracle(z[1:2], alpha)[0], atol=1e-6, rtol=0)
    assert torch.equal(out[2], torch.zeros(3))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("masked", [False, True])
def test_a_nan_query_row_gives_a_nan_output_row_on_every_backend(backend, masked):
    q, k, v = _qkv()
    q[0, 1, 3] = float("nan")
    mask = torch.ones(9, 7, dtype=torch.bool) if masked else None
    out = pladis_attention(q, k, v, attn_mask=mask, backend=backend)
    assert torch.isnan(out[0, 1, 3]).all()
    rows = torch.ones(1, 2, 9, dtype=torch.bool)
    rows[0, 1, 3] = False
    assert torch.isfinite(out[rows]).all()


# --- item 10: float64 ---------------------------------------------------------------------------------


def test_float64_stays_float64():
    z = torch.tensor([[1e39, 0.0, -1.0], [0.3, 0.1, -0.2]], dtype=torch.float64)
    out = entmax(z, 1.5)
    assert out.dtype == torch.float64
    assert torch.equal(out[0], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out[1], entmax_oracle(z[1:], 1.5)[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", ["auto", "eager", "native", "compile"])
def test_float64_dense_limit_matches_sdpa_to_float64_precision(backend):
    q, k, v = _qkv((2, 3, 20, 16), nk=77, dtype=torch.float64, spread=2.0)
    out = pladis_attention(q, k, v, scale=0.0, backend=backend)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-12, rtol=0)
    boosted = pladis_attention(q, k, v, scale=2.0, alpha=1.75, backend=backend)
    torch.testing.assert_close(boosted, eq15_oracle(q, k, v, 2.0, 1.75), atol=1e-10, rtol=0)


# --- item 11: one mask layout for every back-end ----------------------------------------------------


def test_masks_are_normalised_to_the_scores_rank():
    shape = torch.Size((2, 3, 9, 7))
    assert mask_to_bias(torch.ones(7, dtype=torch.bool), shape).shape == (1, 1, 1, 7)
    assert mask_to_bias(torch.zeros(9, 7), shape).shape == (1, 1, 9, 7)
    assert mask_to_bias(torch.zeros(9, 7), shape, torch.float64).dtype == torch.float64


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_1d_key_mask_equals_its_full_expansion(backend):
    q, k, v = _qkv()
    keep = torch.tensor([True, True, False, True, False, True, True])
    out = pladis_attention(q, k, v, attn_mask=keep, backend=backend)
    full = pladis_attention(q, k, v, attn_mask=keep.expand(1, 2, 9, 7).clone(), backend=backend)
    torch.testing.assert_close(out, full, atol=0, rtol=0)


# --- item 12: bad arguments name the parameter --------------------------------------------------------

_Q, _K, _V = _qkv()


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"scale": 10**400}, ValueError, "scale"),
        ({"alpha": 10**400}, ValueError, "alpha"),
        ({"temperature": 10**400}, ValueError, "temperature"),
        ({"backend": ["eager"]}, ValueError, "backend"),
        ({"query": None}, TypeError, "query must be a torch.Tensor"),
        ({"key": [1.0, 2.0]}, TypeError, "key must be a torch.Tensor"),
        ({"value": "v"}, TypeError, "value must be a torch.Tensor"),
        ({"query": _Q.int()}, TypeError, "query must be a floating-point tensor"),
        ({"query": _Q.to(torch.complex64)}, TypeError, "query must be a floating-point tensor"),
        ({"key": _K.double()}, TypeError, "query and key must have the same dtype"),
        ({"query": _Q.to("meta")}, ValueError, "query is on the meta device"),
    ],
)
def test_bad_attention_arguments_name_the_parameter(kwargs, error, pattern):
    args = {"query": _Q, "key": _K, "value": _V, **kwargs}
    q, k, v = args.pop("query"), args.pop("key"), args.pop("value")
    with pytest.raises(error, match=pattern):
        pladis_attention(q, k, v, **args)


def test_pladis_weights_checks_shapes_and_dtypes():
    with pytest.raises(ValueError, match="same number"):
        pladis_weights(torch.randn(16), torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match="head dim"):
        pladis_weights(torch.randn(2, 9, 16), torch.randn(2, 7, 8))
    with pytest.raises(TypeError, match="key must be a floating-point tensor"):
        pladis_weights(torch.randn(2, 9, 16), torch.ones(2, 7, 16, dtype=torch.int64))


def test_zero_head_dim_matches_sdpa():
    q, k, v = torch.randn(1, 2, 3, 0), torch.randn(1, 2, 4, 0), torch.randn(1, 2, 4, 5)
    torch.testing.assert_close(pladis_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


# --- item 13: one compiled kernel for every λ and temperature --------------------------------------


@pytest.mark.skipif(not compiled.usable(torch.device("cpu")), reason="torch.compile cannot run here")
def test_compile_serves_every_scale_and_temperature_with_one_kernel():
    from torch._dynamo.utils import counters

    compiled._compiled.cache_clear()
    q, k, v = _qkv((1, 2, 24, 16), nk=77)
    before = counters["stats"]["unique_graphs"]
    for scale, temperature in [(2.0, 1.0), (1.0, 1.0), (1.5, 0.7), (-0.5, 0.3)]:  # λ = T = 1 included
        out = pladis_attention(q, k, v, scale=scale, temperature=temperature, backend="compile")
        torch.testing.assert_close(out.double(), eq15_oracle(q, k, v, scale, 1.5, temperature), atol=2e-5, rtol=0)
    assert counters["stats"]["unique_graphs"] - before == 1
    assert compiled._compiled.cache_info().currsize == 1 and compiled._compiled.cache_info().maxsize == compiled.MAX_KERNELS


# --- property tests (bounded, seeded) -------------------------------------------------------------------

alphas = st.one_of(st.sampled_from([1.0, 1.5, 2.0]), st.floats(1.01, 2.0))
scales = st.floats(-2.0, 4.0)
temperatures = st.sampled_from([1e-3, 0.3, 1.0, 3.0, 1e3])


@seed(18)
@PROPERTY
@given(alpha=alphas, scale=scales, temperature=temperatures, nk=st.integers(1, 40), spread=st.sampled_from([0.1, 1.0, 5.0]),
       masked=st.booleans(), data=st.integers(0, 10**6))
def test_property_backends_agree_with_the_float64_oracle(alpha, scale, temperature, nk, spread, masked, data):
    q, k, v = _qkv((1, 2, 5, 8), nk=nk, seed_=data, spread=spread)
    bias = None
    if masked:
        bias = torch.zeros(nk)
        bias[torch.randperm(nk, generator=torch.Generator().manual_seed(data))[: nk // 2]] = -10000.0
    expected = eq15_oracle(q, k, v, scale, alpha, temperature, bias)
    for backend in CPU_BACKENDS:
        out = pladis_attention(q, k, v, scale=scale, alpha=alpha, temperature=temperature, attn_mask=bias, backend=backend)
        torch.testing.assert_close(out.double(), expected, atol=5e-5 * (1 + abs(scale)), rtol=1e-4)


@seed(18)
@PROPERTY
@given(alpha=alphas, n=st.integers(1, 30), spread=st.floats(1e-3, 1e3), data=st.integers(0, 10**6),
       dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
def test_property_entmax_lies_on_the_simplex(alpha, n, spread, data, dtype):
    z = (torch.randn(4, n, generator=torch.Generator().manual_seed(data)) * spread).to(dtype)
    p = entmax(z, alpha)
    assert p.dtype == dtype and (p >= 0).all()
    torch.testing.assert_close(p.double().sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-5, rtol=0)


@seed(18)
@PROPERTY
@given(value=st.one_of(st.none(), st.text(max_size=3), st.just(10**400), st.just(float("nan")), st.lists(st.floats(), max_size=2),
                       st.just(torch.ones(2)), st.complex_numbers(allow_nan=False)),
       name=st.sampled_from(["scale", "alpha", "temperature"]))
def test_property_bad_settings_raise_value_errors_naming_the_parameter(value, name):
    with pytest.raises(ValueError, match=name):
        pladis.pladis_attention(_Q, _K, _V, **{name: value})
