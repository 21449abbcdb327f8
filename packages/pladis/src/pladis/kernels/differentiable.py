"""PLADIS attention (Eq. 15) with gradients: for autograd (training, gradient-guided sampling).

The fast back-ends update buffers in place and hold τ fixed, which autograd cannot differentiate. Here
the dense branch is ``torch.softmax`` and the sparse branch :class:`EntmaxFunction`: the sort-free
solver forward, and backward the exact Jacobian of α-entmax (Peters, Niculae & Martins, 2019),

    ∂p/∂z = diag(s) − s·sᵀ / Σs,   s_i = p_i^(2−α) on the support, 0 elsewhere,

which is softmax's diag(p) − p·pᵀ at α = 1 and sparsemax's at α = 2. The weights
M = (1−λ)·softmax(S + bias) + λ·α-entmax(S/T + bias) (Eq. 15) are then one matmul with V. The Nq×Nk
weights are held in memory (autograd keeps them for the backward anyway).
"""

from __future__ import annotations

import torch

from .eager import scores_of

__all__ = ["EntmaxFunction", "weights", "attention"]


class EntmaxFunction(torch.autograd.Function):
    """α-entmax over the last dim of float32 logits, differentiable (see the module docstring); −inf
    entries get 0 and fully masked rows zeros, both with zero gradient. :func:`pladis.entmax` uses it
    when autograd records."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, alpha: float) -> torch.Tensor:
        from ..alpha_entmax import _entmax_last_dim

        probs = _entmax_last_dim(logits.float(), alpha)
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


def weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float
) -> torch.Tensor:
    """Eq. 15's weights M = (1−λ)·softmax(S + bias) + λ·α-entmax(S/T + bias), float32, differentiable."""
    scores = scores.float()
    dense_logits = scores if bias is None else scores + bias
    sparse_logits = scores / temperature if temperature != 1.0 else scores
    if bias is not None:
        sparse_logits = sparse_logits + bias
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
