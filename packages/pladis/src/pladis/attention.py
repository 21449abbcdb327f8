"""PLADIS attention (Eq. 15): one QKᵀ, one matmul of the λ-mixed weights with V."""

from __future__ import annotations

import torch

from ._checks import batch_shape, check_alpha, check_scale, check_temperature
from .kernels import backends, differentiable
from .kernels.eager import mixed_weights, scores_of

__all__ = ["pladis_attention", "pladis_weights", "mask_to_bias"]


def pladis_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
    attn_mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """PLADIS attention, Eq. 15: At_dense + λ·(At_α-entmax − At_dense).

    Shapes follow ``torch.nn.functional.scaled_dot_product_attention``: query ``(..., Nq, D)``,
    key ``(..., Nk, D)``, value ``(..., Nk, Dv)``, output ``(..., Nq, Dv)``. Because Eq. 15 is linear
    in the attention weights it is computed as ONE matmul of
    ``M = (1−λ)·softmax(S) + λ·α-entmax(S / temperature)`` with V, where S = QKᵀ/√D is computed once.

    ``scale`` is λ (paper default 2.0; any finite real: λ = 0 is dense attention, λ = 1 pure sparse
    attention, λ > 1 extrapolates). ``alpha`` ∈ [1, 2] picks the sparse map (1.5 = entmax15,
    2 = sparsemax). ``temperature`` ∈ [1e-6, 1e6] divides the sparse logits (β of suppl. G.1).
    No queries give an empty output and no keys give zeros, as in SDPA.
    ``attn_mask`` is SDPA's: boolean (True = attend) or an additive float bias; an additive bias of
    −10000 (SANA's convention) removes a key from the sparse branch exactly.

    ``backend`` picks the implementation: ``"eager"`` (torch ops, chunked over queries), ``"compile"``
    (the per-row work fused by ``torch.compile``), ``"triton"`` (one fused CUDA kernel: QKᵀ, both
    normalisations, the mix and M·V), ``"native"`` (one fused C kernel for the per-row work on CPU,
    built on first use) or ``"auto"`` (the fastest available for these inputs; see
    :func:`pladis.kernels.backends.choose`). A back-end that cannot run here warns and falls back.
    """
    _check_shapes(query, key, value)
    scale = check_scale(scale)
    alpha = check_alpha(alpha)
    temperature = check_temperature(temperature)
    bias = mask_to_bias(attn_mask, scores_shape(query, key)) if attn_mask is not None else None
    return backends.attention(query, key, value, bias, scale, alpha, temperature, backend)


def pladis_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
    attn_mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """The mixed attention weights (1−λ)·softmax(S) + λ·α-entmax(S/temperature), in float32.

    ``backend``: ``"eager"``, ``"compile"`` or ``"native"``; ``"auto"`` picks native on CPU where the
    kernel builds, else compile for large CPU inputs. The Triton kernel never materialises the weights,
    so ``"triton"`` computes them like ``"compile"``. With
    autograd recording through query or key, the weights are differentiable (exact α-entmax gradient).
    """
    scale = check_scale(scale)
    alpha = check_alpha(alpha)
    temperature = check_temperature(temperature)
    scores = scores_of(query, key)
    bias = mask_to_bias(attn_mask, scores.shape) if attn_mask is not None else None
    if bias is not None and bias.dim() > 2:  # a mask with a larger batch than query/key: its own weights
        scores = scores.expand(torch.broadcast_shapes(scores.shape, bias.shape))
    if scores.numel() == 0:  # no queries or no keys: no weights
        return scores.contiguous()
    if backends.needs_grad(scores, bias):
        backends.check_backend(backend)
        return differentiable.weights(scores, bias, scale, alpha, temperature)
    chosen = backends.weights_backend(backend, scores, bias, alpha)
    if chosen == "native":
        from .kernels.native import native_weights

        return native_weights(scores.transpose(-2, -1).contiguous(), bias, scale, alpha, temperature)[0].mT.contiguous()
    if chosen == "compile":
        from .kernels.compiled import compiled_mixed_weights

        return compiled_mixed_weights(scores, bias, scale, alpha, temperature)
    return mixed_weights(scores, bias, scale, alpha, temperature)


def mask_to_bias(attn_mask: torch.Tensor, scores_shape: torch.Size) -> torch.Tensor:
    """An SDPA mask (bool: True = attend; float: additive) as a float32 additive bias."""
    if not isinstance(attn_mask, torch.Tensor):
        raise ValueError(f"attn_mask must be a torch.Tensor or None; got {type(attn_mask).__name__}")
    try:
        torch.broadcast_shapes(attn_mask.shape, scores_shape)
    except RuntimeError as error:
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the attention scores "
            f"{tuple(scores_shape)} (batch..., Nq, Nk)"
        ) from error
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, device=attn_mask.device).masked_fill_(~attn_mask, float("-inf"))
    if not attn_mask.is_floating_point():
        raise ValueError(f"attn_mask must be bool or floating point; got dtype {attn_mask.dtype}")
    return attn_mask.float()


def _check_shapes(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(
            "query, key and value must have the same number (>= 2) of dims, shaped (..., N, D); got "
            f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must share the head dim D (last dim); got {query.shape[-1]} and {key.shape[-1]}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same number of keys Nk (dim -2); got {key.shape[-2]} and {value.shape[-2]}"
        )
    try:
        batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError as error:
        raise ValueError(
            f"batch dims of query {tuple(query.shape[:-2])}, key {tuple(key.shape[:-2])} and value "
            f"{tuple(value.shape[:-2])} do not broadcast"
        ) from error


def scores_shape(query: torch.Tensor, key: torch.Tensor) -> torch.Size:
    batch = batch_shape(query.shape[:-2], key.shape[:-2])
    return torch.Size((*batch, query.shape[-2], key.shape[-2]))
