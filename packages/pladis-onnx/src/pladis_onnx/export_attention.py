"""Export-friendly PLADIS attention (Eq. 15) with a sort-free, fixed-iteration α-entmax (Eq. 24).

Everything here traces to plain ONNX elementwise / reduce ops (Sub, Relu, ReduceSum, ReduceL2, Greater,
Where, Softmax, MatMul): no sort, TopK, CumSum, loops or data-dependent control flow, so the graph is
static and runs on any execution provider (TopK/CumSum are slow in ONNX Runtime and lack bf16 on the
CUDA EP). λ (``scale``) may be a tensor, so one exported graph serves every λ, 0 included.

Threshold τ, in the shifted domain x = (α−1)(z − max z) where max x = 0 and τ* ∈ [−1, 0):

* α = 2 (sparsemax): Michelot's iteration τ ← (Σ_S x − 1)/|S| on S = {x > τ} from τ₀ = −1. τ rises
  monotonically, S only shrinks, and τ is exact once S stops changing (≤ Nk steps in the worst case;
  attention rows need 2–5). ``SPARSEMAX_ITERS`` steps are unrolled.
* α = 1.5: ``ENTMAX15_NEWTON_ITERS`` Newton steps on f(τ) = Σ[x − τ]₊² − 1 from τ₀ = −1 (f is convex and
  decreasing, so Newton rises monotonically and S = {x > τ} ⊇ the true support), then the quadratic
  Σ_S (x − τ)² = 1 is solved in closed form on S. That is exact when S is the true support, and
  otherwise its error is second order in the Newton error.
* other α ∈ (1, 2): ``NEWTON_ITERS`` Newton steps from τ₀ = −1 (k = 1/(α−1)).

The probabilities are renormalised at the end, so every row sums to 1 even if τ is not yet exact.
Rows that are entirely masked (−inf) return zeros in both branches, as ``pladis.pladis_attention``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "ENTMAX15_NEWTON_ITERS",
    "NEWTON_ITERS",
    "SPARSEMAX_ITERS",
    "entmax_fixed",
    "pladis_attention_export",
]

SPARSEMAX_ITERS = 10
ENTMAX15_NEWTON_ITERS = 5
NEWTON_ITERS = 12
_TINY = 1e-30  # guards divisions on fully masked rows (finite in fp32)


def entmax_fixed(z: torch.Tensor, alpha: float, iters: int | None = None) -> torch.Tensor:
    """α-entmax over the last dim of a float32 tensor with a fixed iteration count (Eq. 24).

    ``alpha`` is a Python float in [1, 2] fixed at trace time (1 = softmax, 1.5 = entmax15,
    2 = sparsemax); ``iters`` overrides the default iteration count of the chosen solver.
    """
    if not 1.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must be in [1, 2]; got {alpha!r}")
    if alpha == 1.0:
        return torch.softmax(z, dim=-1)
    row_max = z.amax(-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    x = (z - row_max) * (alpha - 1.0)
    tau = torch.full_like(row_max, -1.0)
    if alpha == 2.0:
        for _ in range(SPARSEMAX_ITERS if iters is None else iters):
            support = x > tau
            count = support.to(x.dtype).sum(-1, keepdim=True)
            total = torch.where(support, x, torch.zeros_like(x)).sum(-1, keepdim=True)
            tau = (total - 1.0) / count.clamp_min(1.0)
        probs = torch.relu(x - tau)
    elif alpha == 1.5:
        for _ in range(ENTMAX15_NEWTON_ITERS if iters is None else iters):
            y = torch.relu(x - tau)
            s1 = y.sum(-1, keepdim=True)
            s2 = torch.linalg.vector_norm(y, 2, dim=-1, keepdim=True).square()
            tau = tau + (s2 - 1.0) / (2.0 * s1).clamp_min(_TINY)
        # closed form on the support S = {x > τ}: Σ_S (x − τ)² = 1, written around the current τ
        y = torch.relu(x - tau)
        count = (y > 0).to(x.dtype).sum(-1, keepdim=True).clamp_min(1.0)
        s1 = y.sum(-1, keepdim=True)
        s2 = torch.linalg.vector_norm(y, 2, dim=-1, keepdim=True).square()
        disc = (s1 * s1 - count * (s2 - 1.0)).clamp_min(0.0)
        tau = tau + (s1 - disc.sqrt()) / count
        probs = torch.relu(x - tau).square()
    else:
        power = 1.0 / (alpha - 1.0)
        for _ in range(NEWTON_ITERS if iters is None else iters):
            y = torch.relu(x - tau)
            y_km1 = y.pow(power - 1.0)
            f = (y_km1 * y).sum(-1, keepdim=True) - 1.0
            slope = power * y_km1.sum(-1, keepdim=True)
            tau = tau + f / slope.clamp_min(_TINY)
        probs = torch.relu(x - tau).pow(power)
    return probs / probs.sum(-1, keepdim=True).clamp_min(_TINY)


def pladis_attention_export(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    alpha: float = 1.5,
    temperature: float = 1.0,
    attn_mask: torch.Tensor | None = None,
    iters: int | None = None,
) -> torch.Tensor:
    """Eq. 15 on (…, N, D) heads: ((1−λ)·softmax(S) + λ·α-entmax(S/temperature))·V, S = QKᵀ/√D once.

    ``scale`` (λ) is a 0-d/1-element tensor (a graph input when exported) or a float; ``alpha`` and
    ``temperature`` are fixed at trace time. ``attn_mask`` is SDPA's (bool: True = attend, or additive).
    The weights are computed in float32 and cast to ``value``'s dtype for the single W·V matmul.
    """
    scores = torch.matmul(query * (1.0 / math.sqrt(query.shape[-1])), key.transpose(-2, -1)).float()
    if attn_mask is not None:
        bias = mask_bias(attn_mask)
        sparse_logits = scores + bias if temperature == 1.0 else scores / temperature + bias
        scores = scores + bias
    else:
        sparse_logits = scores if temperature == 1.0 else scores / temperature
    dense = torch.softmax(scores, dim=-1)
    if attn_mask is not None:  # fully masked rows: zeros, not NaN
        dense = torch.where(torch.isnan(dense), torch.zeros_like(dense), dense)
    if not isinstance(scale, torch.Tensor) and scale == 0.0:
        weights = dense
    else:
        lam = scale.float().reshape(()) if isinstance(scale, torch.Tensor) else float(scale)
        sparse = entmax_fixed(sparse_logits, alpha, iters)
        weights = dense + lam * (sparse - dense)
    return torch.matmul(weights.to(value.dtype), value)


def mask_bias(attn_mask: torch.Tensor) -> torch.Tensor:
    """SDPA's mask (bool: True = attend, or additive) as a float32 additive bias, in exportable ops."""
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, dtype=torch.float32).masked_fill(~attn_mask, float("-inf"))
    return attn_mask.float()
