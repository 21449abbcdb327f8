"""PLADIS attention (Eq. 15) as one Triton kernel: QKᵀ, softmax, the α-entmax threshold, the λ-mix and M·V.

Each program takes BLOCK_M queries of one (batch, head) and holds their whole score rows (Nk ≤ 256 keys,
padded to a power of two) in registers: K and V are loaded once, S = QKᵀ/√d is computed once in fp32,
and nothing of size Nq×Nk touches memory. The threshold uses the solver of :mod:`pladis.alpha_entmax`
(Jensen/softmax-weighted lower bounds, Michelot for α = 2, closed form on the support for α = 1.5,
Newton on φ then on f otherwise), iterated per block until every row's Σp is 1 to fp32 resolution —
an on-device loop, no host sync. Masked keys (−inf) get 0; fully masked rows give zeros.

Runs on CUDA, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests). Imported lazily: without
Triton, :mod:`pladis.kernels.backends` never loads this module.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from ..alpha_entmax import _MAX_ITER, _PHI_PASSES, _RESIDUAL_TOL

__all__ = ["triton_attention"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_AUTOTUNE = not _INTERPRET  # a fixed BLOCK_M = 16 otherwise (the interpreter; a quick check)
_CONFIGS = [
    triton.Config({"BLOCK_M": bm}, num_warps=w, num_stages=1)
    for bm, w in ((16, 2), (16, 4), (32, 4), (64, 4))
]


@triton.jit
def _pow(y, exponent):
    """y**exponent for y ≥ 0 (0 stays exactly 0)."""
    return tl.where(y > 0, tl.exp2(tl.log2(tl.maximum(y, 1e-38)) * exponent), 0.0)


@triton.jit
def _pladis_kernel(
    Q, K, V, Bias, Out,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sbb, sbh, sbm, sbn, sob, soh, som, sod,
    H, NQ, NK, D, DV,
    qk_scale, inv_temp, lam, tol,
    ALPHA: tl.constexpr, HAS_BIAS: tl.constexpr, SAME_LOGITS: tl.constexpr, IEEE: tl.constexpr,
    PHI_PASSES: tl.constexpr, MAX_ITER: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    m_ok = offs_m < NQ
    n_ok = offs_n < NK

    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    k = tl.load(K + b * skb + h * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                mask=n_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    if IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    s = tl.where(n_ok[None, :], s * qk_scale, float("-inf"))  # S = QKᵀ/√d, fp32, padding removed

    if HAS_BIAS:
        bias = tl.load(Bias + b * sbb + h * sbh + offs_m[:, None] * sbm + offs_n[None, :] * sbn,
                       mask=m_ok[:, None] & n_ok[None, :], other=0.0).to(tl.float32)
        dense_logits = s + bias
    else:
        dense_logits = s
    row_max = tl.max(dense_logits, 1)
    dead = row_max == float("-inf")  # every key masked: zeros in the end
    x = dense_logits - tl.where(dead, 0.0, row_max)[:, None]
    x = tl.where(dead[:, None] & n_ok[None, :], 0.0, x)
    z = tl.sum(tl.exp(x), 1)  # softmax denominators; the numerators are recomputed at the end

    if SAME_LOGITS:  # no bias or temperature 1: the sparse logits are the dense ones over T
        xs = x
        w = tl.exp(x)
        c = (ALPHA - 1.0) * inv_temp
    else:
        zs = s * inv_temp + bias
        zs_max = tl.max(zs, 1)
        xs = zs - tl.where(dead, 0.0, zs_max)[:, None]
        xs = tl.where(dead[:, None] & n_ok[None, :], 0.0, xs)
        w = tl.exp(xs)
        c = ALPHA - 1.0
    power = 1.0 / (ALPHA - 1.0)

    # Start: the largest of the lower bounds −1, Jensen and softmax-weighted Jensen (β = 1, 2, 4).
    mean = tl.sum(tl.where(n_ok[None, :], xs, 0.0), 1) / NK
    t = tl.maximum(mean - _pow(NK * 1.0, 1.0 - ALPHA) / c, -1.0 / c)
    finite_x = tl.maximum(xs, -1e30)
    for _ in tl.static_range(3):
        total = tl.sum(w, 1)
        t = tl.maximum(t, tl.sum(w * finite_x, 1) / total - _pow(total, 1.0 - ALPHA) / c)
        w = w * w
    lo = t

    done = dead | (offs_m >= NQ)
    it = pid_m * 0  # an int32 scalar tensor: a loop-carried counter
    while (tl.sum(tl.where(done, 0, 1), 0) > 0) & (it < MAX_ITER):
        u = xs - t[:, None]
        y = tl.maximum(u, 0.0)
        s1 = tl.sum(y, 1) * c
        if ALPHA == 2.0:
            f1 = s1
            count = tl.sum(tl.where(u > 0, 1.0, 0.0), 1)
            nxt = t + (s1 - 1.0) / (count * c)  # Michelot: the closed form on the support
            lo_next = lo
        elif ALPHA == 1.5:
            count = tl.sum(tl.where(u > 0, 1.0, 0.0), 1)
            f1 = tl.sum(y * y, 1) * c * c
            f = f1 - 1.0
            norm = tl.sqrt(f1)
            disc = s1 * s1 - count * f
            closed = t + f / ((s1 + tl.sqrt(tl.maximum(disc, 0.0))) * c)
            lo_next = tl.maximum(lo, t + (f1 - norm) / (s1 * c))  # Newton on φ = ‖y‖₂
            below = f >= 0
            nxt = tl.where(below, tl.where(disc >= 0, closed, lo_next), tl.maximum(lo_next, closed))
            lo_next = tl.where(below, lo_next, nxt)
        else:
            ys = y * c
            wk = _pow(ys, power - 1.0)
            f1 = tl.sum(wk * ys, 1)
            g = tl.maximum(tl.sum(wk, 1), 1e-38)
            phi_step = (f1 - _pow(tl.maximum(f1, 1e-38), 1.0 - 1.0 / power)) / g
            step = tl.where(it < PHI_PASSES, phi_step, (f1 - 1.0) / (power * g))
            nxt = t + step / c
            lo_next = nxt
        done = done | (tl.abs(f1 - 1.0) <= tol)
        t = tl.where(done, t, nxt)
        lo = tl.where(done, lo, lo_next)
        it += 1

    ys = tl.maximum((xs - t[:, None]) * c, 0.0)
    if ALPHA == 2.0:
        p = ys
    elif ALPHA == 1.5:
        p = ys * ys
    else:
        p = _pow(ys, power)
    total = tl.maximum(tl.sum(p, 1), 1e-38)
    mixed = tl.exp(x) * ((1.0 - lam) / z)[:, None] + p * (lam / total)[:, None]
    mixed = tl.where(dead[:, None], 0.0, mixed)

    v = tl.load(V + b * svb + h * svh + offs_n[:, None] * svn + offs_dv[None, :] * svd,
                mask=n_ok[:, None] & (offs_dv[None, :] < DV), other=0.0)
    if IEEE:
        out = tl.dot(mixed.to(v.dtype), v, input_precision="ieee")
    else:
        out = tl.dot(mixed.to(v.dtype), v)
    tl.store(Out + b * sob + h * soh + offs_m[:, None] * som + offs_dv[None, :] * sod,
             out.to(Out.dtype.element_ty), mask=m_ok[:, None] & (offs_dv[None, :] < DV))


_tuned = triton.autotune(configs=_CONFIGS, key=["NK", "D", "DV", "ALPHA", "HAS_BIAS", "SAME_LOGITS"])(_pladis_kernel)


def _as_bh(tensor: torch.Tensor, batch: torch.Size) -> torch.Tensor:
    """``tensor`` broadcast to ``batch`` + its last two dims, viewed with exactly two batch dims (B, H)."""
    t = tensor.expand(*batch, *tensor.shape[-2:])
    if len(batch) == 0:
        return t.view(1, 1, *t.shape)
    if len(batch) == 1:
        return t.unsqueeze(0)
    if len(batch) > 2:
        t = t.reshape(-1, batch[-1], *t.shape[-2:])
    return t


def triton_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Eq. 15 by the fused kernel; shapes as ``scaled_dot_product_attention`` (Nk ≤ 256, D, Dv ≤ 256),
    α in (1, 2], q/k/v of one dtype (fp16, bf16 or fp32); ``bias`` is an additive float mask or None."""
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    n_query, head_dim = query.shape[-2:]
    n_key, dim_v = key.shape[-2], value.shape[-1]
    q, k, v = (_as_bh(t, batch) for t in (query, key, value))
    out = torch.empty(*q.shape[:2], n_query, dim_v, dtype=value.dtype, device=value.device)
    if bias is not None:
        b = _as_bh(bias.to(torch.float32) if bias.dtype == torch.float64 else bias, batch)
        b = b.expand(*q.shape[:2], n_query, n_key)
        b_strides = b.stride()
    else:
        b, b_strides = out, (0, 0, 0, 0)
    same_logits = bias is None or temperature == 1.0
    args = (
        q, k, v, b, out, *q.stride(), *k.stride(), *v.stride(), *b_strides, *out.stride(),
        q.shape[1], n_query, n_key, head_dim, dim_v,
        1.0 / math.sqrt(head_dim), 1.0 / temperature, scale, _RESIDUAL_TOL / (alpha - 1.0),
    )
    meta = dict(
        ALPHA=float(alpha), HAS_BIAS=bias is not None, SAME_LOGITS=same_logits,
        IEEE=query.dtype == torch.float32, PHI_PASSES=_PHI_PASSES, MAX_ITER=_MAX_ITER + n_key,
        BLOCK_N=max(16, triton.next_power_of_2(n_key)), BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        BLOCK_DV=max(16, triton.next_power_of_2(dim_v)),
    )
    n_bh = q.shape[0] * q.shape[1]
    if not _AUTOTUNE or query.device.type != "cuda":
        block_m = 16
        _pladis_kernel[(triton.cdiv(n_query, block_m), n_bh)](*args, **meta, BLOCK_M=block_m)
    else:
        _tuned[lambda m: (triton.cdiv(n_query, m["BLOCK_M"]), n_bh)](*args, **meta)
    return out.view(*batch, n_query, dim_v)
