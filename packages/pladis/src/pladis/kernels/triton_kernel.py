"""PLADIS attention (Eq. 15) as one Triton kernel: QKᵀ, softmax, the α-entmax threshold, the λ-mix and M·V.

Each program takes BLOCK_M queries of one (batch, head) and holds their whole score rows in registers:
K and V are loaded once, S = QKᵀ/√d is computed once in fp32, and nothing of size Nq×Nk touches memory.
The keys are split into two power-of-two tiles (77 keys = 64 + 16, not 128: the per-score work is
what costs), and logits are kept in base 2 (exp2 is the hardware's exponential).

The threshold uses the solver of :mod:`pladis.alpha_entmax` in the scaled domain (τ ∈ [−1, 0)): start at
a softmax-weighted Jensen bound (weights exp(4x)), then a fixed number of passes per α
(Michelot for α = 2, the closed form on the support for α = 1.5, Newton on φ then on f otherwise). Rows
whose Σp is not 1 to fp32 resolution afterwards (and whose last step still moved τ) are finished by a
loop that only blocks holding such a row enter. Masked keys (−inf) get 0; fully masked rows give zeros.

Runs on CUDA, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests). Imported lazily: without
Triton, :mod:`pladis.kernels.backends` never loads this module.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["PASSES", "key_tiles", "passes_for"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# One launch configuration, no autotuning (so no first-call benchmarking): 64 rows per 4-warp program;
# rows wider than 128 keys take 16 rows per program, as 64 of them would spill registers
# (docs/kernels.md, tools/bench_triton_configs.py).
_BLOCK_M, _WARPS, _BLOCK_M_WIDE, _WIDE = 64, 4, 16, 128
# A register cap of 128 per thread lets four 4-warp programs share an SM instead of three; the softmax
# numerators are recomputed at the end so that α = 1.5 and 2 fit in it (docs/kernels.md).
_MAX_REGISTERS = 128
# Fixed passes before the straggler check, by α (others: 3 below 1.5, 5 above): enough that few blocks
# of attention-like score rows still need the loop (docs/kernels.md).
PASSES = {1.5: 3, 2.0: 4}
_FAR = tl.constexpr(-1.0e30)  # masked logits, base 2: exp2 gives 0 and 0·_FAR stays finite
_STEP_EPS = 3e-7  # a pass that moves τ by less has nothing left to do (τ ∈ [−1, 0): ~2 fp32 ulps of 1)
_LOG2E = 1.4426950408889634
_LOG2E_C = tl.constexpr(_LOG2E)


def passes_for(alpha: float) -> int:
    return PASSES.get(alpha, 3 if alpha < 1.5 else 5)


@triton.jit
def _pow(y, E: tl.constexpr):
    """y**E for y ≥ 0 and a constant E > 0 (0 stays 0: exp2(−inf) = 0)."""
    if E == 1.0:
        r = y
    elif E == 2.0:
        r = y * y
    elif E == 3.0:
        r = y * y * y
    elif E == 4.0:
        r = y * y
        r = r * r
    elif E == 0.5:
        r = tl.sqrt(y)
    else:
        r = tl.exp2(_log2(y) * E)
    return r


if _INTERPRET:  # the interpreter has no libdevice

    @triton.jit
    def _log2(y):
        return tl.log2(y)

else:

    @triton.jit
    def _log2(y):
        """log2 by the hardware's approximation (lg2.approx, ~2⁻²² relative) without libdevice's
        denormal handling, which costs ten more instructions; log2(0) = −inf."""
        return libdevice.fast_log2f(y)


@triton.jit
def _scores(
    q, K, k_base, skn, skd, offs_n, offs_d, NK, D, qk_scale2,
    PAD: tl.constexpr, NEG_INF: tl.constexpr, IEEE: tl.constexpr,
):
    """One key tile of S·log2(e) = QKᵀ·log2(e)/√d (fp32). Keys past NK (when ``PAD``) are −inf with
    ``NEG_INF`` (a bias follows, and a row with every key masked must stay −inf), else _FAR."""
    n_ok = offs_n < NK
    k = tl.load(K + k_base + offs_n[:, None] * skn + offs_d[None, :] * skd,
                mask=n_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    if IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    s = s * qk_scale2
    if PAD:
        if NEG_INF:
            s = tl.where(n_ok[None, :], s, float("-inf"))
        else:
            s = tl.where(n_ok[None, :], s, _FAR)
    return s


@triton.jit
def _biased(s, Bias, b_base, sbm, sbn, offs_m, offs_n, NQ, NK):
    """s + bias·log2(e) (the bias is an additive mask in natural units; −inf stays −inf)."""
    bias = tl.load(Bias + b_base + offs_m[:, None] * sbm + offs_n[None, :] * sbn,
                   mask=(offs_m < NQ)[:, None] & (offs_n < NK)[None, :], other=0.0).to(tl.float32)
    return s + bias * _LOG2E_C


@triton.jit
def _poisoned(s):
    """Rows of a tile holding NaN or +inf (their output is NaN)."""
    return tl.max(tl.where((s != s) | (s == float("inf")), 1, 0), 1) > 0


@triton.jit
def _shift(z, row_max, dead):
    """z − row max, finite (−inf → _FAR); fully masked rows become uniform (zeroed at the end)."""
    x = z - tl.where(dead, 0.0, row_max)[:, None]
    return tl.maximum(tl.where(dead[:, None], 0.0, x), _FAR)


@triton.jit
def _weighted_sums(w, x):
    """One tile's Σw and Σw·x (a weighted Jensen bound's sums)."""
    return tl.sum(w, 1), tl.sum(w * x, 1)


@triton.jit
def _pass_sums(x, tau, c2, ALPHA: tl.constexpr, KPOW: tl.constexpr):
    """One tile's sums at τ, with y = [c·x − τ]₊ (scaled domain): α = 2 (Σy, |S|), α = 1.5 (Σy, Σy², |S|),
    else (Σ y^k = Σp, Σ y^(k−1), unused)."""
    y = tl.maximum(x * c2 - tau[:, None], 0.0)
    if ALPHA == 2.0 or ALPHA == 1.5:
        a = tl.sum(y, 1)
        b = tl.sum(y * y, 1) if ALPHA == 1.5 else a
        n = tl.sum(tl.where(y > 0.0, 1.0, 0.0), 1)
    else:
        w = _pow(y, KPOW - 1.0)
        a = tl.sum(w * y, 1)
        b = tl.sum(w, 1)
        n = a
    return a, b, n


@triton.jit
def _step(tau, lo, a, b, n, PHI: tl.constexpr, ALPHA: tl.constexpr, KPOW: tl.constexpr):
    """The solver's next point from one pass's sums (see :func:`pladis.alpha_entmax._threshold_pass`);
    returns (next τ, best lower bound, Σp at τ)."""
    if ALPHA == 2.0:  # Michelot: the closed form on S = {y > 0}
        nxt = tau + (a - 1.0) / n
        total = a
    elif ALPHA == 1.5:
        f = b - 1.0
        norm = tl.sqrt(b)
        disc = a * a - n * f
        closed = tau + f / (a + tl.sqrt(tl.maximum(disc, 0.0)))
        lo = tl.maximum(lo, tau + (b - norm) / a)  # Newton on φ = ‖y‖₂: a lower bound
        below = f >= 0.0
        nxt = tl.where(below, tl.where(disc >= 0.0, closed, lo), tl.maximum(lo, closed))
        lo = tl.where(below, lo, nxt)
        total = b
    else:
        g = tl.maximum(b, 1e-30)
        if PHI:  # Newton on φ = (Σp)^(1/k)
            nxt = tau + (a - tl.exp2(_log2(tl.maximum(a, 1e-30)) * (1.0 - 1.0 / KPOW))) / g
        else:  # Newton on f = Σp − 1
            nxt = tau + (a - 1.0) / (KPOW * g)
        total = a
    return nxt, lo, total


@triton.jit
def _both_sums(xsa, xsb, tau, c2, ALPHA: tl.constexpr, KPOW: tl.constexpr, HAS_B: tl.constexpr):
    """:func:`_pass_sums` over the whole row (both key tiles)."""
    a, b, n = _pass_sums(xsa, tau, c2, ALPHA, KPOW)
    if HAS_B:
        a2, b2, n2 = _pass_sums(xsb, tau, c2, ALPHA, KPOW)
        a += a2
        b += b2
        n += n2
    return a, b, n


@triton.jit
def _sparse(xsa, xsb, tau, c2, KPOW: tl.constexpr, HAS_B: tl.constexpr):
    """Eq. 24 before normalising, [c·x − τ]₊^k, for both key tiles (the second is the first when there is
    no tail tile), and the row sums Σp."""
    pa = _pow(tl.maximum(xsa * c2 - tau[:, None], 0.0), KPOW)
    total = tl.sum(pa, 1)
    pb = pa
    if HAS_B:
        pb = _pow(tl.maximum(xsb * c2 - tau[:, None], 0.0), KPOW)
        total += tl.sum(pb, 1)
    return pa, pb, total


@triton.jit
def _pladis_kernel(
    Q, K, V, Bias, Out,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sbb, sbh, sbm, sbn, sob, soh, som, sod,
    H, NQ, NK, D, DV,
    qk_scale2, inv_temp, c2, lam, tol, step_eps,
    ALPHA: tl.constexpr, KPOW: tl.constexpr, HAS_BIAS: tl.constexpr, SAME_LOGITS: tl.constexpr,
    IEEE: tl.constexpr, PHI_PASSES: tl.constexpr, PASSES: tl.constexpr, MAX_ITER: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, PAD_A: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    offs_a = tl.arange(0, BLOCK_A)  # keys [0, BLOCK_A): all real unless NK < 16
    HAS_B: tl.constexpr = BLOCK_B > 0  # a tail tile of keys [BLOCK_A, BLOCK_A + BLOCK_B)
    m_ok = offs_m < NQ

    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    k_base = b * skb + h * skh
    xa = _scores(q, K, k_base, skn, skd, offs_a, offs_d, NK, D, qk_scale2, PAD_A, HAS_BIAS, IEEE)
    if HAS_B:
        offs_b = BLOCK_A + tl.arange(0, BLOCK_B)
        xb = _scores(q, K, k_base, skn, skd, offs_b, offs_d, NK, D, qk_scale2, True, HAS_BIAS, IEEE)

    # Dense logits (base 2), shifted to max 0; the sparse logits xs are the same unless a bias and a
    # temperature ≠ 1 both apply (then z/T + bias, shifted apart).
    if HAS_BIAS:
        b_base = b * sbb + h * sbh
        if not SAME_LOGITS:
            sa = xa * inv_temp
            if HAS_B:
                sb = xb * inv_temp
        xa = _biased(xa, Bias, b_base, sbm, sbn, offs_m, offs_a, NQ, NK)
        row_max = tl.max(xa, 1)
        bad = _poisoned(xa)
        if HAS_B:
            xb = _biased(xb, Bias, b_base, sbm, sbn, offs_m, offs_b, NQ, NK)
            row_max = tl.maximum(row_max, tl.max(xb, 1))
            bad = bad | _poisoned(xb)
        dead = (row_max == float("-inf")) & ~bad  # every key masked: zeros in the end
        xa = _shift(xa, row_max, dead)
        if HAS_B:
            xb = _shift(xb, row_max, dead)
    else:
        row_max = tl.max(xa, 1)
        bad = _poisoned(xa)
        if HAS_B:
            row_max = tl.maximum(row_max, tl.max(xb, 1))
            bad = bad | _poisoned(xb)
        dead = offs_m < 0
        xa = xa - row_max[:, None]
        if HAS_B:
            xb = xb - row_max[:, None]
    ea = tl.exp2(xa)
    z = tl.sum(ea, 1)
    if HAS_B:
        eb = tl.exp2(xb)
        z += tl.sum(eb, 1)

    if SAME_LOGITS:
        xsa = xa
        wa = ea
        if HAS_B:
            xsb = xb
            wb = eb
    else:  # bias and temperature: z/T + bias, its own shift
        xsa = _biased(sa, Bias, b_base, sbm, sbn, offs_m, offs_a, NQ, NK)
        zs_max = tl.max(xsa, 1)
        if HAS_B:
            xsb = _biased(sb, Bias, b_base, sbm, sbn, offs_m, offs_b, NQ, NK)
            zs_max = tl.maximum(zs_max, tl.max(xsb, 1))
        xsa = _shift(xsa, zs_max, dead)
        wa = tl.exp2(xsa)
        if HAS_B:
            xsb = _shift(xsb, zs_max, dead)
            wb = tl.exp2(xsb)

    # Start: the larger of the lower bounds −1 and Jensen with weights w = exp(4x) ≤ 1,
    # τ ≥ c·E_w[x] − (Σw)^(1−α) (see pladis.alpha_entmax.threshold_start; β = 4 alone starts as well as
    # β = 1, 2, 4 together on random SDXL rows).
    wa = wa * wa
    wa = wa * wa
    total, moment = _weighted_sums(wa, xsa)
    if HAS_B:
        wb = wb * wb
        wb = wb * wb
        total_b, moment_b = _weighted_sums(wb, xsb)
        total += total_b
        moment += moment_b
    tau = tl.maximum(c2 * moment / total - tl.exp2(_log2(total) * (1.0 - ALPHA)), -1.0)
    lo = tau

    step = tau
    if not HAS_B:
        xsb = xsa  # a stand-in the helpers never read
    for i in tl.static_range(PASSES):
        p1, p2, pn = _both_sums(xsa, xsb, tau, c2, ALPHA, KPOW, HAS_B)
        nxt, lo, _ = _step(tau, lo, p1, p2, pn, i < PHI_PASSES, ALPHA, KPOW)
        step = nxt - tau
        tau = nxt
    pa, pb, total = _sparse(xsa, xsb, tau, c2, KPOW, HAS_B)

    # Stragglers: rows whose Σp is off and whose last pass still moved τ; only their block iterates on.
    ok = (tl.abs(total - 1.0) <= tol) | (tl.abs(step) <= step_eps) | dead | (offs_m >= NQ)
    if tl.sum(tl.where(ok, 0, 1), 0) > 0:
        it = 0
        while (tl.sum(tl.where(ok, 0, 1), 0) > 0) & (it < MAX_ITER):
            p1, p2, pn = _both_sums(xsa, xsb, tau, c2, ALPHA, KPOW, HAS_B)
            nxt, lo_next, at_tau = _step(tau, lo, p1, p2, pn, False, ALPHA, KPOW)
            settled = ok | (tl.abs(at_tau - 1.0) <= tol)
            ok = settled | (tl.abs(nxt - tau) <= step_eps)
            tau = tl.where(settled, tau, nxt)
            lo = tl.where(settled, lo, lo_next)
            it += 1
        pa, pb, total = _sparse(xsa, xsb, tau, c2, KPOW, HAS_B)

    # M = (1 − λ)·softmax + λ·entmax (Eq. 15 on the weights), then one M·V. The softmax numerators are
    # recomputed as exp2(x − log2 z), not kept from above: kept, they stay live (in registers) through
    # every solver pass, and recomputed as exp2(x) the compiler would merge them back.
    log2z = tl.where(dead, float("inf"), _log2(z))[:, None]  # dead rows: exp2(−inf) = 0
    sparse_w = tl.where(dead, 0.0, lam / tl.maximum(total, 1e-30))
    v_base = V + b * svb + h * svh
    dv_ok = offs_dv[None, :] < DV
    va = tl.load(v_base + offs_a[:, None] * svn + offs_dv[None, :] * svd,
                 mask=(offs_a < NK)[:, None] & dv_ok, other=0.0)
    ma = (tl.exp2(xa - log2z) * (1.0 - lam) + pa * sparse_w[:, None]).to(va.dtype)
    if IEEE:
        out = tl.dot(ma, va, input_precision="ieee")
    else:
        out = tl.dot(ma, va)
    if HAS_B:
        vb = tl.load(v_base + offs_b[:, None] * svn + offs_dv[None, :] * svd,
                     mask=(offs_b < NK)[:, None] & dv_ok, other=0.0)
        mb = (tl.exp2(xb - log2z) * (1.0 - lam) + pb * sparse_w[:, None]).to(vb.dtype)
        if IEEE:
            out = tl.dot(mb, vb, out, input_precision="ieee")
        else:
            out = tl.dot(mb, vb, out)
    out = tl.where(bad[:, None], float("nan"), out)  # NaN or +inf among the row's logits: NaN, as softmax
    tl.store(Out + b * sob + h * soh + offs_m[:, None] * som + offs_dv[None, :] * sod,
             out.to(Out.dtype.element_ty), mask=m_ok[:, None] & dv_ok)


def key_tiles(n_key: int) -> tuple[int, int]:
    """(BLOCK_A, BLOCK_B): a power-of-two tile of real keys and a power-of-two tail tile (0: none),
    each ≥ 16 (tl.dot's minimum); 77 keys → (64, 16), 256 → (256, 0), 9 → (16, 0)."""
    if n_key <= 16:
        return 16, 0
    head = 1 << (n_key.bit_length() - 1)
    if head == n_key:
        return head, 0
    return head, max(16, triton.next_power_of_2(n_key - head))
