"""The α-entmax family (Peters et al. 2019; PLADIS Eq. 11 and Eq. 24), solved without sorting.

α-entmax(z) = [(α−1)·z − τ]₊^{1/(α−1)} with the threshold τ chosen so that the output sums to 1
(Eq. 24). α = 1 is softmax, α = 2 is sparsemax. The solver works on logits shifted to max 0,
x = z − max z, with a scale c = (α−1)/temperature, so the scores of Eq. 24 are c·x ≤ 0 and τ ∈ [−1, 0).
With k = 1/(α−1),

    f(τ) = Σᵢ [c·xᵢ − τ]₊^k − 1   and   φ(τ) = (f(τ) + 1)^{1/k}   (the ℓk norm of [c·x − τ]₊)

are convex and decreasing, so Newton's method on φ − 1 from any point gives a lower bound of the root and
then rises monotonically to it — no bracketing, no sort. For α = 2 the step is Michelot's algorithm.
Start: τ₀ = max(−1, c·mean(x) − n^{−1/k}) — both lower bounds (max c·x = 0; Jensen), the second exact
for a uniform row. Each pass is one sweep over the row computing a few sums.

α = 2 and α = 1.5 are solved exactly: each pass also solves f = 0 in closed form on the current support
S = {c·x > τ} (α = 2: δ = (Σy − 1)/|S|; α = 1.5: δ = (Σy² − 1)/(Σy + √((Σy)² − |S|(Σy² − 1))), y = [c·x − τ]₊)
and accepts τ + δ once it keeps S, i.e. 0 ≤ δ ≤ min_S y: f then coincides with that closed form at τ + δ,
which is therefore the unique root, exact to fp32 rounding. Other α stop when the Newton step or the
residual Σp − 1 reaches fp32 resolution. τ is always computed in float32.

The solver runs a fixed number of sync-free passes (:func:`threshold_passes`, also traced by
``torch.compile``); rows still unconverged are gathered and finished on their own (:func:`solve_threshold`).
Masked entries (−inf) get exactly 0; a row that is entirely masked returns all zeros; a row holding
NaN or +inf returns NaN (as softmax). float16/bfloat16/float32 are solved in float32, float64 in float64.
τ is computed without autograd; :func:`entmax` with autograd recording goes through
:class:`EntmaxFunction`, whose backward is the exact Jacobian.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_alpha

__all__ = ["EntmaxFunction", "entmax", "entmax_threshold", "sparsemax", "entmax15"]

_MAX_ITER = 64
# |Σp − 1|·(α − 1) at which a row counts as solved (see converged); an exactly solved row (α = 1.5, 2)
# sits at ~1e-7. Larger k = 1/(α−1) raises fp32's floor on Σp and lowers p's sensitivity to it.
_RESIDUAL_TOL = 4e-7
_RESIDUAL_TOL_FLOAT64 = 1e-13
_PHI_PASSES = 2
_TINY = torch.finfo(torch.float32).tiny
# Sync-free passes before the first convergence check: most rows of attention scores are solved by then
# (α = 2, 1.5: exact solves; α < 1.5: k = 1/(α−1) > 2 makes f nearly linear; α > 1.5 needs one more).
WARM_PASSES = {2.0: 3, 1.5: 3}


def warm_passes(alpha: float) -> int:
    """Sync-free solver passes worth running before checking convergence (see tools/bench_attention.py)."""
    return WARM_PASSES.get(alpha, 3 if alpha < 1.5 else 4)


def entmax(scores: torch.Tensor, alpha: float = 1.5, dim: int = -1) -> torch.Tensor:
    """α-entmax of ``scores`` along ``dim`` (Eq. 11 / Eq. 24 of the PLADIS paper).

    α = 1 returns softmax, α = 1.5 entmax15, α = 2 sparsemax; α in [1.01, 2] is supported (closer to 1,
    use α = 1). fp16/bf16 inputs are solved in float32 and cast back, float64 in float64. Entries equal
    to −inf get exactly 0 and a fully masked row returns zeros; a row holding NaN or +inf gives NaN.
    """
    alpha = check_alpha(alpha)
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"scores must be a torch.Tensor; got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor; got dtype {scores.dtype}")
    moved = scores.movedim(dim, -1)
    if moved.numel() == 0:  # nothing to normalise (as softmax)
        return scores.clone()
    work = torch.float64 if scores.dtype == torch.float64 else torch.float32
    if torch.is_grad_enabled() and scores.requires_grad:
        probs = EntmaxFunction.apply(moved.to(work), alpha)
    else:
        probs = _entmax_last_dim(moved.to(work), alpha)
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
    z = scores.movedim(dim, -1)
    z = z.double() if z.dtype == torch.float64 else z.float()
    x, row_max, _ = _shifted(z)
    t = solve_threshold(x, alpha - 1.0, alpha)[0]
    return ((alpha - 1.0) * (t + row_max)).movedim(-1, dim)


def _entmax_last_dim(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """α-entmax over the last dim of a float32 (or float64) tensor."""
    if alpha == 1.0:
        return _safe_softmax(z)
    z = z.contiguous()
    x, _, dead = _shifted(z)
    probs = entmax_shifted(x, alpha - 1.0, alpha)
    if dead is not None:  # all −inf: zeros; NaN or +inf in the row: NaN (as softmax)
        poisoned = dead & ~torch.isneginf(z.amax(-1, keepdim=True))
        probs = probs.masked_fill_(dead, 0.0).masked_fill_(poisoned, float("nan"))
    return probs


class EntmaxFunction(torch.autograd.Function):
    """α-entmax over the last dim of float32/float64 logits, differentiable; −inf entries get 0 and fully
    masked rows zeros, both with zero gradient. Backward is the exact Jacobian of α-entmax (Peters,
    Niculae & Martins, 2019): ∂p/∂z = diag(s) − s·sᵀ/Σs, s_i = p_i^(2−α) on the support, 0 elsewhere —
    softmax's diag(p) − p·pᵀ at α = 1 and sparsemax's at α = 2."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, alpha: float) -> torch.Tensor:
        probs = _entmax_last_dim(logits if logits.dtype == torch.float64 else logits.float(), alpha)
        ctx.alpha = alpha
        ctx.save_for_backward(probs)
        return probs

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (probs,) = ctx.saved_tensors
        alpha = ctx.alpha
        if alpha == 2.0:
            s = (probs > 0).to(grad.dtype)
        elif alpha == 1.0:
            s = probs
        else:
            s = torch.where(probs > 0, probs.clamp_min(torch.finfo(probs.dtype).tiny) ** (2.0 - alpha), 0.0)
        total = s.sum(-1, keepdim=True)
        mean = (s * grad).sum(-1, keepdim=True) / total.clamp_min(torch.finfo(total.dtype).tiny)
        return s * (grad - mean), None


def entmax_shifted(x: torch.Tensor, c: float, alpha: float) -> torch.Tensor:
    """α-entmax of c·x for shifted float32 logits x (max 0 in every row), α in (1, 2]."""
    weights, total = entmax_weights(x, c, alpha)
    return weights.div_(total)


def entmax_weights(
    x: torch.Tensor, c: float, alpha: float, exp_x: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """[c·x − τ]₊^k and its row sums (≈ 1) for the exact τ (no autograd: gradients go through
    :class:`pladis.kernels.differentiable.EntmaxFunction`). ``exp_x`` = exp(x), when at hand, tightens
    the solver's start (:func:`threshold_start`)."""
    _, weights, total = solve_threshold(x, c, alpha, exp_x=exp_x)
    return weights, total


def support_weights(
    x: torch.Tensor, t: torch.Tensor, c: float, alpha: float, fused: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 24 before normalising: [c·(x − t)]₊^k (a new tensor) and its row sums, Σp = f(τ) + 1."""
    y = (x - t).clamp_min_(0.0) if _is_one(c) else (x - t).mul_(c).clamp_min_(0.0)
    if alpha == 1.5:
        y = y.square_()
    elif alpha != 2.0:
        y = _power(y, 1.0 / (alpha - 1.0), fused)
    return y, y.sum(-1, keepdim=True).clamp_min_(_TINY)


def _power(
    y: torch.Tensor, exponent: float, fused: bool = False, tiny_zeros: bool = False, rough: bool = False
) -> torch.Tensor:
    """y**exponent for y ≥ 0; zeros stay exactly 0. Multiples of 1/4 use multiplications and square roots
    (exact to an ulp or two, cheap in any back-end); others exp2(e·log2 y), cheaper than pow both fused by
    inductor and as eager ops (docs/kernels.md). An exponent above 1 is split, y^⌊e⌋·exp2(frac·log2 y),
    so that exp2 never underflows (its slow path) and y^⌊e⌋ puts the zeros back.

    ``tiny_zeros`` (eager, terms of a solver pass's sums, only where tiny**e ≤ 2⁻⁴⁰: :func:`_tiny_as_zero`):
    the caller passes zeros as tiny (y ≥ tiny), and they give tiny**e instead of 0, saving the clamp and
    the mask; that adds ≤ n·2⁻⁴⁰ to the derivative Σ y^(k−1), which shortens the Newton step by as little
    and so keeps every iterate a lower bound.

    ``fused`` on CPU, positive multiples of 1/3 (α = 1.75: k − 1 = 1/3, k = 4/3) use :func:`_cube_root`,
    faster (``rough``: ≤ 5e-5, for all but a solver's last pass); GPUs have exp2 and log2 in hardware."""
    quarters = round(exponent * 4)
    if quarters != 0 and abs(exponent * 4 - quarters) < 1e-9 and abs(quarters) <= 16:
        whole, part = divmod(abs(quarters), 4)
        out = y.pow(whole) if whole else None
        if part:
            root = y.sqrt()
            frac = root if part == 2 else root.sqrt() if part == 1 else root * root.sqrt()
            out = frac if out is None else out * frac
        return out.reciprocal() if quarters < 0 else out
    thirds = round(exponent * 3)
    if fused and y.device.type == "cpu" and thirds > 0 and abs(exponent * 3 - thirds) < 1e-9 and thirds <= 12:
        whole, part = divmod(thirds, 3)
        root = _cube_root(y, rough)
        out = root if part == 1 else root * root
        return out * y.pow(whole) if whole else out
    # log2(0) takes a slow path, so zeros are clamped away first and put back after.
    tiny_zeros = tiny_zeros and not fused
    positive = y if tiny_zeros else y.clamp_min(_TINY)
    whole = math.floor(exponent) if exponent > 1 else 0
    zeros = y if whole == 1 else y.pow(whole) if whole else None
    if fused:
        if zeros is not None:
            return torch.exp2(torch.log2(positive) * (exponent - whole)) * zeros
        return torch.where(y > 0, torch.exp2(torch.log2(positive) * exponent), 0.0)
    out = torch.log2(positive).mul_(exponent - whole).exp2_()
    if zeros is None and tiny_zeros:
        return out
    return out.mul_(torch.sign(y) if zeros is None else zeros)


def _is_one(c: float | torch.Tensor) -> bool:
    """Whether the scale c is the number 1 (a 0-dim tensor, as ``torch.compile`` gets it, never counts)."""
    return not isinstance(c, torch.Tensor) and c == 1.0


def _tiny_as_zero(exponent: float) -> bool:
    """Whether tiny**exponent ≤ 2⁻⁴⁰, so that a solver pass may take zeros as tiny (see :func:`_power`)."""
    return _TINY**exponent <= 2.0**-40


# Seed of y^(−1/3) from the float32 bits (the fast inverse square root's trick, for the cube root):
# bits(r) = magic − bits(y)/3 (a magic near the one that minimises the next step's error).
_RCBRT_MAGIC = 0x54A21D2A


def _cube_root(y: torch.Tensor, rough: bool = False) -> torch.Tensor:
    """y^(1/3) for y ≥ 0 without exp/log or division (fused by inductor, cheaper than exp2(log2(y)/3) on
    CPU: docs/kernels.md); y = 0 gives exactly 0.

    r ≈ y^(−1/3) from the bit seed and one step r ← r·(1 − e)^(−1/3) with the series to e³, e = 1 − y·r³
    (≤ 1.7e-5), then a Newton step on c = y·r² itself, c ← c + (y − c³)·r²/3: ≤ 1e-7 (≤ 1 ulp,
    unbiased). ``rough`` (20 ops): a Newton step
    r ← r·(1 + e/3) instead, ≤ 5e-5. r is solved for max(y, tiny) (zeros would make r³ overflow);
    subnormal y (never met here) get a rough value < 3e-13. Intermediates are read few times each:
    inductor re-traces an unrealised input at every read, so more reads multiply the compile time.
    """
    normal = y.clamp_min(_TINY)
    bits = normal.view(torch.int32).to(torch.float32) * (1.0 / 3.0)
    r = (_RCBRT_MAGIC - bits.to(torch.int32)).view(torch.float32)
    e = 1.0 - normal * r.pow(3)
    r = r * (1.0 + e * (1.0 / 3.0 if rough else 1.0 / 3.0 + e * (2.0 / 9.0 + e * (14.0 / 81.0))))
    r2 = r.pow(2)
    c = y * r2
    return c + (y - c.pow(3)) * (r2 * (1.0 / 3.0))


def converged(total: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rows whose Σp is 1 to the working dtype's resolution (|Σp − 1| ≤ k·4e-7 in float32, k·1e-13 in
    float64, k = 1/(α−1)); their normalised weights are then within fp32 (fp64) resolution of the exact
    α-entmax (docs/kernels.md)."""
    tol = _RESIDUAL_TOL_FLOAT64 if total.dtype == torch.float64 else _RESIDUAL_TOL
    return (total - 1.0).abs() <= tol / (alpha - 1.0)


def _safe_softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax whose fully masked (all −inf) rows are zeros instead of NaN."""
    probs = torch.softmax(z, dim=-1)
    dead = torch.isneginf(z.amax(-1, keepdim=True))
    return probs.masked_fill_(dead, 0.0) if bool(dead.any()) else probs


def _shifted(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x = z − max z (max x = 0); rows without a finite max (all −inf, or holding NaN or +inf) are shifted
    by 0, made uniform and flagged."""
    row_max = z.amax(-1, keepdim=True)
    finite = torch.isfinite(row_max)
    dead = None
    if not bool(finite.all()):
        dead = ~finite
        row_max = row_max.masked_fill(dead, 0.0)
    x = z - row_max
    if dead is not None:
        x = x.masked_fill_(dead, 0.0)  # solved as a uniform row, zeroed by the caller
    return x, row_max, dead


def threshold_start(
    x: torch.Tensor, c: float, alpha: float, mean: torch.Tensor | None = None, exp_x: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solver state (t, lo) at a lower bound of τ/c: the largest of −1, Jensen's c·mean(x) − n^{−1/k} and,
    given ``exp_x`` = exp(x), the weighted bound c·E_w[x] − (Σw)^{−1/k} for w = exp(4x).

    For weights 0 ≤ wᵢ ≤ 1, Σ[c·xᵢ − τ]₊^k ≥ Σ wᵢ[c·xᵢ − τ]₊^k ≥ W·(E_w[c·x] − τ)₊^k (Jensen), so each
    bound has f ≥ 0; with w = exp(4x) it sits close to the root for peaked rows. On random SDXL-shaped
    rows at α = 1.75 it is as close as the best of w = exp(βx), β = 1, 2, 4, together (median gap to τ
    0.19), at a third of their cost; eager passes ``exp_x`` for 1.5 < α < 2, the fused kernels always.
    """
    if mean is None:
        mean = x.mean(-1, keepdim=True)
    t = (mean - (x.shape[-1] ** (1.0 - alpha)) / c).clamp_min(-1.0 / c)  # −inf entries leave −1/c
    if exp_x is not None:
        w = exp_x * exp_x
        w = w.mul_(w)
        total = w.sum(-1, keepdim=True)
        moment = w.mul_(x.clamp_min(-1e30)).sum(-1, keepdim=True)  # 0·(−inf) would be NaN
        t = torch.maximum(t, moment / total - _power(total, 1.0 - alpha) / c)
    return t, t


def threshold_passes(
    x: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    c: float,
    alpha: float,
    passes: int,
    fused: bool = False,
    first: int = 0,
    rough: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``passes`` passes of the solver from ``state`` = (t, lo), without host syncs (traceable); ``first``
    is the index of the first of them (general α uses Newton on φ for the first two, then on f).

    ``fused`` counts the support with compare-and-sum (what ``torch.compile`` fuses best) rather than
    sign-and-sum (the fastest pair of eager ops). ``rough`` (with ``fused``) lets the per-score powers
    err by ≤ 5e-5 (:func:`_cube_root`): fine for any pass but the last, as the next (Newton from any
    point gives a lower bound) corrects it, and as many rows converge in the compiled kernel.
    """
    t, lo = state
    for i in range(passes):
        t, lo = _threshold_pass(x, t, lo, c, alpha, fused, phi=first + i < _PHI_PASSES, rough=rough)
    return t, lo


def _threshold_pass(
    x: torch.Tensor,
    t: torch.Tensor,
    lo: torch.Tensor,
    c: float,
    alpha: float,
    fused: bool,
    phi: bool = True,
    rough: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sweep over the rows at t = τ/c; returns the next point and the best lower bound ``lo``.

    α = 2: Michelot's step, the closed form on S = {x > t} (a lower bound of τ from any point).
    α = 1.5: from below (f ≥ 0) the closed form on S, exact once S is the support, else an upper
    bound; from above, the larger of the two lower bounds Newton and the closed form on S ⊂ support.
    Other α: Newton on φ = ‖[c·x − τ]₊‖_k (nearly linear far from the root) with ``phi``, else on f
    (no per-row power); both monotone from below.
    """
    u = x - t
    if alpha in (1.5, 2.0):
        y = u.clamp_min(0.0) if fused else u.clamp_min_(0.0)
        s1 = y.sum(-1, keepdim=True) * c
        count = (u > 0).to(torch.float32).sum(-1, keepdim=True) if fused else torch.sign(y).sum(-1, keepdim=True)
        if alpha == 2.0:
            return t + (s1 - 1.0) / (count * c), lo
        norm = torch.linalg.vector_norm(y, dim=-1, keepdim=True) * c
        f = norm * norm - 1.0
        disc = s1 * s1 - count * f
        closed = t + f / ((s1 + disc.clamp_min(0.0).sqrt()) * c)
        lo = torch.maximum(lo, t + (f + 1.0 - norm) / (s1 * c))  # Newton on φ = ‖y‖₂: a lower bound
        below = f >= 0
        nxt = torch.where(below, torch.where(disc >= 0, closed, lo), torch.maximum(lo, closed))
        return nxt, torch.where(below, lo, nxt)
    power = 1.0 / (alpha - 1.0)
    tiny_zeros = not fused and _tiny_as_zero(power - 1.0)  # then _power needs no clamp or mask of its own
    if fused:
        ys = u.clamp_min(0.0) if _is_one(c) else u.clamp_min(0.0) * c
    else:
        ys = (u if _is_one(c) else u.mul_(c)).clamp_min_(_TINY if tiny_zeros else 0.0)
    w = _power(ys, power - 1.0, fused, tiny_zeros=tiny_zeros, rough=rough)
    g = w.sum(-1, keepdim=True).clamp_min(_TINY)
    f1 = (w * ys if fused else w.mul_(ys)).sum(-1, keepdim=True)  # Σ p = f + 1
    if phi:  # Newton on φ = f1^(1/k): step (φ − 1)·f1^(1 − 1/k)/g
        scaled = _power(f1.clamp_min(_TINY), 1.0 - 1.0 / power, fused)
        step = (f1 - scaled) / g
    else:  # Newton on f: step (f1 − 1)/(k·g)
        step = (f1 - 1.0) / (power * g)
    t = t + step / c
    return t, t


def solve_threshold(
    x: torch.Tensor, c: float, alpha: float, warm: int | None = None, exp_x: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(τ/c, weights, row sums) for shifted float32 logits x (max 0 per row), solved to fp32 precision.

    ``warm`` sync-free passes, then one check (a host sync): rows whose Σp is not yet 1 to fp32
    resolution are gathered and iterated on their own until they are. Other α than 1.5 and 2 are solved
    on c·x with c = 1 (one product instead of one per pass), τ/c given back in the units of x.
    """
    with torch.no_grad():
        x, unit = x.detach(), 1.0
        if alpha not in (1.5, 2.0) and c != 1.0:
            x, unit, c = x * c, c, 1.0
        if warm is None:
            warm = warm_passes(alpha)
        state = threshold_passes(x, threshold_start(x, c, alpha, exp_x=exp_x), c, alpha, warm)
        weights, total = support_weights(x, state[0], c, alpha)
        done = converged(total, alpha)
        if bool(done.all()):
            return state[0] / unit, weights, total
        n = x.shape[-1]
        rows = (~done.reshape(-1)).nonzero().squeeze(1)
        sub_x = x.reshape(-1, n).index_select(0, rows)
        sub = tuple(s.reshape(-1, 1).index_select(0, rows) for s in state)
        for i in range(_MAX_ITER + n):
            sub = threshold_passes(sub_x, sub, c, alpha, 1, first=warm + i)
            sub_w, sub_total = support_weights(sub_x, sub[0], c, alpha)
            if bool(converged(sub_total, alpha).all()):
                break
        t = state[0].reshape(-1, 1).index_copy(0, rows, sub[0]).view_as(state[0])
        weights = weights.view(-1, n).index_copy_(0, rows, sub_w).view_as(weights)
        total = total.view(-1, 1).index_copy_(0, rows, sub_total).view_as(total)
        return t / unit, weights, total
