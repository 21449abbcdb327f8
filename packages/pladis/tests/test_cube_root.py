"""The division-free cube root of the fused (inductor) solver path, used for α = 1.75 (Eq. 24 with k = 4/3)."""

from __future__ import annotations

import pytest
import torch

from pladis.alpha_entmax import (
    _cube_root,
    _power,
    converged,
    solve_threshold,
    support_weights,
    threshold_passes,
    threshold_start,
)


def _values() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    normal = torch.exp2(torch.rand(200_000, generator=gen) * 146.0 - 126.0)  # [2^-126, 2^20]
    return torch.cat([torch.zeros(5), normal, torch.rand(100_000, generator=gen)])


@pytest.mark.parametrize(("rough", "tol"), [(False, 1.2e-7), (True, 6e-5)])
def test_cube_root_is_accurate_and_keeps_zeros(rough, tol):
    y = _values()
    out = _cube_root(y, rough)
    rel = (out.double() - y.double() ** (1 / 3)).abs() / y.double() ** (1 / 3)
    assert rel[y > 0].max() <= tol
    assert torch.equal(out[:5], torch.zeros(5))
    tiny = torch.tensor([1e-45, 1e-40, 1e-39])  # subnormal: rough, but finite and small
    assert ((_cube_root(tiny, rough) >= 0) & (_cube_root(tiny, rough) < 3e-13)).all()


@pytest.mark.parametrize("exponent", [1 / 3, 2 / 3, 4 / 3, 5 / 3, 7 / 3])
def test_fused_thirds_are_full_precision(exponent):
    y = _values()
    y = y[(y == 0) | ((y > 1e-12) & (y <= 1))]
    out = _power(y, exponent, fused=True)
    expected = y.double() ** exponent
    normal = expected > 1e-30
    rel = ((out.double() - expected) / expected)[normal].abs()
    assert rel.max() <= 3e-7
    assert torch.equal(out[y == 0], torch.zeros_like(out[y == 0]))


def test_rough_passes_before_the_last_keep_the_threshold():
    """Rough powers in all but the last fused pass (as the compiled kernel runs them) solve as many rows,
    to the same weights, as exact ones."""
    alpha, c = 1.75, 0.75
    gen = torch.Generator().manual_seed(1)
    spread = torch.tensor([0.3, 1.0, 3.0, 10.0]).repeat_interleave(1000)[:, None]
    z = torch.randn(4000, 77, generator=gen) * spread
    x = z - z.amax(-1, keepdim=True)
    t_exact = solve_threshold(x, c, alpha)[0]
    p_exact, total_exact = support_weights(x, t_exact, c, alpha)
    p_exact = p_exact / total_exact
    solved = []
    for rough in (False, True):
        state = threshold_start(x, c, alpha, exp_x=x.exp())
        for i in range(4):
            state = threshold_passes(x, state, c, alpha, 1, fused=True, first=i, rough=rough and i < 3)
        weights, total = support_weights(x, state[0], c, alpha, fused=True)
        done = converged(total, alpha).squeeze(-1)
        assert ((weights / total)[done] - p_exact[done]).abs().max() <= 1e-6
        solved.append(int(done.sum()))
    assert solved[1] >= solved[0] - 4
