"""PLADIS attention (Eq. 15) with gradients: for autograd (training, gradient-guided sampling).

The fast back-ends update buffers in place and hold τ fixed, which autograd cannot differentiate. Here
the dense branch is ``torch.softmax`` and the sparse branch :class:`pladis.alpha_entmax.EntmaxFunction`:
the sort-free solver forward, and backward the exact Jacobian of α-entmax. The weights
M = (1−λ)·softmax(S + bias) + λ·α-entmax(sparse logits) (Eq. 15; sparse logits (S + bias)/T for T ≤ 1,
S/T + bias above) are then one matmul with V. The Nq×Nk weights are held in memory (autograd keeps
them for the backward anyway).
"""

from __future__ import annotations

import torch

from ..alpha_entmax import EntmaxFunction
from .eager import same_logits, scores_of

__all__ = ["EntmaxFunction", "weights", "attention"]


def weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float
) -> torch.Tensor:
    """Eq. 15's weights M = (1−λ)·softmax(S + bias) + λ·α-entmax(sparse logits), float32 (float64 for
    float64 scores), differentiable."""
    scores = scores if scores.dtype == torch.float64 else scores.float()
    dense_logits = scores if bias is None else scores + bias
    if same_logits(bias, temperature):
        sparse_logits = dense_logits / temperature if temperature != 1.0 else dense_logits
    else:
        sparse_logits = scores / temperature + bias
    dead = torch.isneginf(dense_logits.amax(-1, keepdim=True))  # every key masked: zeros, as elsewhere
    dense = torch.softmax(dense_logits.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    sparse = EntmaxFunction.apply(sparse_logits, alpha)
    return (1.0 - scale) * dense + scale * sparse


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Eq. 15 as ``weights(S) @ V`` with S = QKᵀ/√d, differentiable in query, key, value and bias."""
    return torch.matmul(weights(scores_of(query, key), bias, scale, alpha, temperature).to(value.dtype), value)
