"""The α-entmax family (Peters et al. 2019; PLADIS Eq. 11 and Eq. 24), solved without sorting.

α-entmax(z) = [(α−1)·z − τ]₊^{1/(α−1)} with the threshold τ chosen so that the output sums to 1
(Eq. 24). α = 1 is softmax, α = 2 is sparsemax. We work in the shifted, scaled domain
x = (α−1)·(z − max z), where max x = 0 and τ ∈ [−1, 0). On that domain

    f(τ) = Σᵢ [xᵢ − τ]₊^k − 1,   k = 1/(α−1) ≥ 1,

is convex and decreasing, so Newton's method started at τ₀ = −1 (where f ≥ 0) rises monotonically to
the root without bracketing. For α = 2 the Newton step is Michelot's algorithm, exact once the support
is found; for α = 1.5 the quadratic on the current support is solved in closed form and accepted as
soon as it is consistent with that support. Other α stop when the Newton step falls below fp32
resolution. τ is always computed in float32; the result is cast back to the input dtype.

Masked entries (−inf) get exactly 0; a row that is entirely masked returns all zeros.
These kernels are for inference: τ is computed without autograd.
"""

from __future__ import annotations

import torch

from ._checks import check_alpha

__all__ = ["entmax", "entmax_threshold", "sparsemax", "entmax15"]

_MAX_ITER = 50
_TOL = 1e-7


def entmax(scores: torch.Tensor, alpha: float = 1.5, dim: int = -1) -> torch.Tensor:
    """α-entmax of ``scores`` along ``dim`` (Eq. 11 / Eq. 24 of the PLADIS paper).

    α = 1 returns softmax, α = 1.5 entmax15, α = 2 sparsemax; any α in (1, 2] is supported.
    fp16/bf16 inputs are solved in float32 and cast back. Entries equal to −inf get exactly 0 and a
    fully masked row returns zeros (never NaN).
    """
    alpha = check_alpha(alpha)
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"scores must be a torch.Tensor; got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor; got dtype {scores.dtype}")
    moved = scores.movedim(dim, -1)
    probs = _entmax_last_dim(moved.float(), alpha)
    return probs.to(scores.dtype).movedim(-1, dim)


def sparsemax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparsemax (α = 2) of ``scores`` along ``dim``; see :func:`entmax`."""
    return entmax(scores, 2.0, dim)


def entmax15(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """1.5-entmax of ``scores`` along ``dim``; see :func:`entmax`."""
    return entmax(scores, 1.5, dim)


def entmax_threshold(scores: torch.Tensor, alpha: float = 1.5, dim: int = -1) -> torch.Tensor:
    """The threshold τ of Eq. 24 for ``scores`` (float32, reduced dim kept with size 1).

    τ is expressed in the unshifted domain of Eq. 24: α-entmax(z) = [(α−1)z − τ]₊^{1/(α−1)}.
    Only defined for α in (1, 2]; fully masked rows give −inf.
    """
    alpha = check_alpha(alpha)
    if alpha == 1.0:
        raise ValueError("alpha must be in (1, 2] for a threshold (α = 1 is softmax, which has none)")
    z = scores.movedim(dim, -1).float()
    x, row_max, _ = _shifted(z, alpha)
    tau = _solve_threshold(x, alpha)
    return (tau + (alpha - 1.0) * row_max).movedim(-1, dim)


def _entmax_last_dim(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """α-entmax over the last dim of a float32 tensor."""
    if alpha == 1.0:
        return _safe_softmax(z)
    x, _, dead = _shifted(z, alpha)
    tau = _solve_threshold(x, alpha)
    y = (x - tau).clamp_min_(0.0)
    if alpha == 2.0:
        probs = y
    elif alpha == 1.5:
        probs = y.square_()
    else:
        probs = y.pow_(1.0 / (alpha - 1.0))
    total = probs.sum(-1, keepdim=True)
    probs = probs.div_(total.clamp_min_(torch.finfo(torch.float32).tiny))
    if dead is not None:
        probs = probs.masked_fill_(dead, 0.0)
    return probs


def _safe_softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax whose fully masked (all −inf) rows are zeros instead of NaN."""
    probs = torch.softmax(z, dim=-1)
    dead = torch.isneginf(z.amax(-1, keepdim=True))
    return probs.masked_fill_(dead, 0.0) if bool(dead.any()) else probs


def _shifted(z: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x = (α−1)(z − max z) with max x = 0; rows without a finite max are shifted by 0 and flagged."""
    row_max = z.amax(-1, keepdim=True)
    finite = torch.isfinite(row_max)
    dead = None
    if not bool(finite.all()):
        dead = ~finite
        row_max = row_max.masked_fill(dead, 0.0)
    x = (z - row_max).mul_(alpha - 1.0)
    if dead is not None:
        x = x.masked_fill_(dead, 0.0)  # solved as a uniform row, zeroed by the caller
    return x, row_max, dead


def _solve_threshold(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """τ in the shifted domain (max x = 0), float32, shape ``x.shape[:-1] + (1,)``."""
    with torch.no_grad():
        if alpha == 2.0:
            return _solve_sparsemax(x)
        if alpha == 1.5:
            return _solve_entmax15(x)
        return _solve_newton(x, 1.0 / (alpha - 1.0))


def _solve_sparsemax(x: torch.Tensor) -> torch.Tensor:
    """Michelot's algorithm: τ ← (Σ_S x − 1)/|S| on S = {x > τ}; exact once |S| stops shrinking."""
    tau = x.new_full(x.shape[:-1] + (1,), -1.0)
    size = None
    for _ in range(x.shape[-1] + 1):
        support = x > tau
        new_size = support.sum(-1, keepdim=True)
        tau = (torch.where(support, x, 0.0).sum(-1, keepdim=True) - 1.0) / new_size.clamp_min(1)
        if size is not None and torch.equal(new_size, size):
            break
        size = new_size
    return tau


def _solve_entmax15(x: torch.Tensor) -> torch.Tensor:
    """α = 1.5: Newton from below, accepting the closed-form root on the support once it is consistent.

    With y = [x − τ]₊ on S = {x > τ}, Σ_S (y − δ)² = 1 gives δ = (Σy − √((Σy)² − |S|(Σy² − 1)))/|S|.
    """
    tau = x.new_full(x.shape[:-1] + (1,), -1.0)
    done = torch.zeros_like(tau, dtype=torch.bool)
    for _ in range(_MAX_ITER):
        y = (x - tau).clamp_min_(0.0)
        count = (y > 0).sum(-1, keepdim=True).clamp_min_(1).to(x.dtype)
        s1 = y.sum(-1, keepdim=True)
        s2 = y.square_().sum(-1, keepdim=True)
        disc = s1 * s1 - count * (s2 - 1.0)
        exact = tau + (s1 - disc.clamp_min(0.0).sqrt()) / count
        consistent = (disc >= 0) & ((x > exact).sum(-1, keepdim=True) == count)
        newton = tau + (s2 - 1.0) / (2.0 * s1)
        accept = consistent & ~done
        tau = torch.where(done, tau, torch.where(accept, exact, newton))
        done = done | accept
        if bool(done.all()):
            break
    return tau


def _solve_newton(x: torch.Tensor, power: float) -> torch.Tensor:
    """General α: Newton on f(τ) = Σ[x − τ]₊^k − 1 (k = 1/(α−1)), monotone from τ₀ = −1."""
    tau = x.new_full(x.shape[:-1] + (1,), -1.0)
    for _ in range(_MAX_ITER):
        y = (x - tau).clamp_min_(0.0)
        y_km1 = y.pow(power - 1.0)
        f = (y_km1 * y).sum(-1, keepdim=True) - 1.0
        slope = power * y_km1.sum(-1, keepdim=True)
        step = f / slope
        tau = tau + step
        if float(step.abs().max()) <= _TOL:
            break
    return tau
