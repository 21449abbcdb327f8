"""pladis.entmax against the `entmax` package (the oracle) and the defining properties of α-entmax."""

from __future__ import annotations

import entmax as oracle
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pladis
from pladis._checks import ALPHA_SOFTMAX_GAP

SHAPES = [(1, 2), (5, 7), (64, 77), (2, 3, 300)]
SPREADS = [0.01, 1.0, 10.0, 1000.0]


def _bisect(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return oracle.entmax_bisect(x.double(), alpha, n_iter=200).float()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("spread", SPREADS)
def test_exact_alphas_match_sort_based_oracle(shape, spread):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * spread
    torch.testing.assert_close(pladis.entmax(x, 1.5), oracle.entmax15(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(pladis.entmax(x, 2.0), oracle.sparsemax(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(pladis.entmax15(x), pladis.entmax(x, 1.5), atol=0, rtol=0)
    torch.testing.assert_close(pladis.sparsemax(x), pladis.entmax(x, 2.0), atol=0, rtol=0)


@pytest.mark.parametrize("alpha", [1.05, 1.1, 1.25, 1.333, 1.6, 1.75, 1.9, 1.99])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("spread", SPREADS)
def test_other_alphas_match_bisection_within_1e6(alpha, shape, spread):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2)) * spread
    err = (pladis.entmax(x, alpha) - _bisect(x, alpha)).abs().max().item()
    assert err <= 1e-6


def test_alpha_one_is_softmax():
    x = torch.randn(4, 9) * 3
    torch.testing.assert_close(pladis.entmax(x, 1.0), torch.softmax(x, -1), atol=0, rtol=0)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_dim_argument(dim):
    x = torch.randn(6, 7, 8)
    expected = oracle.entmax15(x, dim=dim)
    torch.testing.assert_close(pladis.entmax(x, 1.5, dim=dim), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [1.0, 1.25, 1.5, 2.0])
def test_masked_entries_are_exactly_zero_and_dead_rows_are_zero(alpha):
    inf = float("inf")
    x = torch.tensor([[0.3, -inf, 1.0, -inf, 0.9], [-inf, -inf, -inf, -inf, -inf]])
    p = pladis.entmax(x, alpha)
    assert torch.isfinite(p).all()
    assert p[0, 1] == 0 and p[0, 3] == 0
    assert torch.equal(p[1], torch.zeros(5))
    assert p[0].sum().item() == pytest.approx(1.0, abs=1e-6)
    unmasked = torch.tensor([[0.3, 1.0, 0.9]])
    torch.testing.assert_close(p[0, [0, 2, 4]], pladis.entmax(unmasked, alpha)[0], atol=1e-7, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-3), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("alpha", [1.0, 1.25, 1.5, 2.0])
def test_half_precision_extreme_logits_and_masks(dtype, tol, alpha):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 77, generator=gen) * 3
    x[0] = -60000.0  # very negative logits (the `entmax` package returns NaN here in fp16)
    x[1, :5] = 60000.0
    x[2, 10:] = float("-inf")
    x[3] = float("-inf")
    x[4] = torch.linspace(-65000, 65000, 77)
    x = x.to(dtype)
    p = pladis.entmax(x, alpha)
    assert p.dtype == dtype
    assert torch.isfinite(p).all()
    sums = p.float().sum(-1)
    assert torch.equal(p[3], torch.zeros(77, dtype=dtype))
    live = torch.ones(16, dtype=torch.bool)
    live[3] = False
    assert (sums[live] - 1).abs().max().item() <= tol
    assert (p[2, 10:] == 0).all()


def test_threshold_matches_eq24():
    x = torch.randn(10, 20) * 2
    for alpha in (1.25, 1.5, 2.0):
        tau = pladis.entmax_threshold(x, alpha)
        p = ((alpha - 1) * x - tau).clamp_min(0) ** (1 / (alpha - 1))
        torch.testing.assert_close(p.sum(-1), torch.ones(10), atol=1e-5, rtol=0)
        torch.testing.assert_close(p / p.sum(-1, keepdim=True), pladis.entmax(x, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("bad", [0.99, 2.01, -1.0, float("nan"), float("inf")])
def test_bad_alpha_names_parameter_and_range(bad):
    with pytest.raises(ValueError, match=r"alpha must be 1 \(softmax\) or in \[1.01, 2\]"):
        pladis.entmax(torch.zeros(3), bad)


def test_non_float_scores_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        pladis.entmax(torch.zeros(3, dtype=torch.long))


rows = st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(row=rows, alpha=st.floats(1.05, 2.0))
def test_properties_simplex_and_support(row, alpha):
    x = torch.tensor(row, dtype=torch.float32)
    p = pladis.entmax(x, alpha)
    assert (p >= 0).all()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    tau = pladis.entmax_threshold(x, alpha)
    scaled = (alpha - 1) * x
    # support = entries above τ (Eq. 24), up to fp32 resolution at the boundary
    # entries whose mass would underflow fp32 (≈1e-49 for α near 1) cannot be told from the boundary
    clearly_in = (scaled > tau + 1e-4) & ((scaled - tau).clamp_min(0) ** (1 / (alpha - 1)) > 1e-30)
    clearly_out = scaled < tau - 1e-4
    assert (p[clearly_in] > 0).all()
    assert (p[clearly_out] == 0).all()
    # the ordering of the scores is preserved
    order = torch.argsort(x)
    assert (p[order].diff() >= -1e-6).all()


# every accepted α: 1 (softmax) or [1.01, 2]
accepted_alphas = st.one_of(st.just(1.0), st.floats(1.0 + ALPHA_SOFTMAX_GAP, 2.0))


@settings(max_examples=100, deadline=None)
@given(row=rows, a=accepted_alphas, b=accepted_alphas)
def test_property_sparsity_is_monotone_in_alpha(row, a, b):
    lo, hi = sorted((a, b))
    x = torch.tensor(row, dtype=torch.float32)
    support_lo = (pladis.entmax(x, lo) > 0).sum()
    support_hi = (pladis.entmax(x, hi) > 0).sum()
    assert support_hi <= support_lo


@pytest.mark.parametrize("exponent", [1 / 3, 4 / 3, 7 / 3, 0.9, 1.1, 0.0526, 10.0, -0.75, -0.3])
@pytest.mark.parametrize("fused", [False, True])
def test_power_matches_float64_and_keeps_zeros(exponent, fused):
    from pladis.alpha_entmax import _power

    y = torch.cat([torch.zeros(7), torch.logspace(-12, 0, 500), torch.rand(500)])
    out = _power(y, exponent, fused)
    expected = y.double() ** exponent
    normal = (y > 0) & (expected > 1e-30) & (expected < 1e30)  # results fp32 represents as normal numbers
    rel = ((out.double() - expected) / expected).abs()[normal]
    # exp2(e·log2 y): log2's last-bit error is scaled by |e·log2 y| (≈ 40·e at y = 1e-12)
    assert (rel <= 3e-7 * (1 + (exponent * y[normal].double().log2()).abs())).all()
    positive = y > 0
    assert torch.equal(out[~positive], torch.zeros(7)) or exponent < 0  # 0**(−e) is not a number we use


@pytest.mark.parametrize("alpha", [1.1, 1.25, 1.6, 1.75, 1.9, 1.99])
@pytest.mark.parametrize("with_exp_start", [False, True])
def test_solver_passes_are_lower_bounds_that_rise(alpha, with_exp_start):
    """The start and every eager pass from it stay below τ (Σp ≥ 1) and never move down, also with masked
    keys and rows where most entries are out of the support (the sum terms' tiny-power shortcut)."""
    from pladis.alpha_entmax import support_weights, threshold_passes, threshold_start

    gen = torch.Generator().manual_seed(3)
    z = torch.randn(512, 77, generator=gen) * torch.tensor([0.1, 1.0, 10.0, 100.0]).repeat_interleave(128)[:, None]
    z[::5, 40:] = float("-inf")
    x = z - z.amax(-1, keepdim=True)
    c = alpha - 1.0
    state = threshold_start(x, c, alpha, exp_x=x.exp() if with_exp_start else None)
    assert (support_weights(x, state[0], c, alpha)[1] >= 1 - 1e-5).all()  # the start is below τ too
    for i in range(8):
        t_before = state[0]
        state = threshold_passes(x, state, c, alpha, 1, first=i)
        assert (state[0] >= t_before - 1e-6 * t_before.abs()).all()  # (rounding, once converged)
        total = support_weights(x, state[0], c, alpha)[1]
        assert (total >= 1 - 1e-5).all()
    expected = _bisect(z, alpha)
    weights, total = support_weights(x, state[0], c, alpha)
    assert (weights / total - expected).abs().max().item() <= 1e-6
