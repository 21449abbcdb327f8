"""PLADIS attention (Eq. 15): one QKᵀ, one matmul of the λ-mixed weights with V."""

from __future__ import annotations

import torch

from ._checks import PLADISSettings, batch_shape
from .kernels import backends, differentiable
from .kernels.eager import mixed_weights, scores_of, working_dtype

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
    No queries give an empty output and no keys give zeros, as in SDPA; D = 0 gives zero scores.
    ``attn_mask`` is SDPA's: boolean (True = attend) or an additive float bias, of any shape that
    broadcasts to the scores (…, Nq, Nk), a 1-D ``(Nk,)`` mask included. The sparse logits are
    (S + bias)/T for T ≤ 1 and S/T + bias for T > 1, so that an additive bias of −10000 (diffusers'
    encoder masks) removes a key from the sparse branch exactly at every temperature.

    Numerics: S and both normalisations are computed in float32 for float16/bfloat16/float32 inputs
    (fp16 scores beyond fp16's range stay finite) and in float64 for float64 inputs (then always by the
    eager back-end); M·V runs in the inputs' dtype. A score row holding NaN or +inf gives a NaN output
    row on every back-end (as softmax); −inf scores are masked keys, and a row with every key masked
    gives zeros.

    ``backend`` picks the implementation: ``"eager"`` (torch ops, chunked over queries), ``"compile"``
    (the per-row work fused by ``torch.compile``), ``"triton"`` (one fused CUDA kernel: QKᵀ, both
    normalisations, the mix and M·V), ``"native"`` (one fused C kernel for the per-row work on CPU,
    built on first use) or ``"auto"`` (the fastest available for these inputs; see
    :func:`pladis.kernels.backends.choose`). A back-end that cannot run here warns and falls back.
    """
    _check_tensors(query=query, key=key, value=value)
    _check_shapes(query, key, value)
    s = PLADISSettings(scale, alpha, temperature, backend)
    bias = mask_to_bias(attn_mask, scores_shape(query, key), query.dtype) if attn_mask is not None else None
    return backends.attention(query, key, value, bias, s.scale, s.alpha, s.temperature, s.backend)


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
    """The mixed attention weights (1−λ)·softmax(S) + λ·α-entmax(S/temperature), in float32 (float64 for
    float64 inputs); query ``(..., Nq, D)``, key ``(..., Nk, D)``, weights ``(..., Nq, Nk)``.

    ``backend``: ``"eager"``, ``"compile"`` or ``"native"``; ``"auto"`` picks native on CPU where the
    kernel builds, else compile for large CPU inputs. The Triton kernel never materialises the weights,
    so ``"triton"`` computes them like ``"compile"``. With
    autograd recording through query or key, the weights are differentiable (exact α-entmax gradient).
    """
    _check_tensors(query=query, key=key)
    _check_shapes(query, key)
    settings = PLADISSettings(scale, alpha, temperature, backend)
    scale, alpha, temperature = settings.scale, settings.alpha, settings.temperature
    scores = scores_of(query, key)
    bias = mask_to_bias(attn_mask, scores.shape, query.dtype) if attn_mask is not None else None
    if bias is not None and bias.dim() > 2:  # a mask with a larger batch than query/key: its own weights
        scores = scores.expand(torch.broadcast_shapes(scores.shape, bias.shape))
    if scores.numel() == 0:  # no queries or no keys: no weights
        return scores.contiguous()
    if backends.needs_grad(scores, bias):
        return differentiable.weights(scores, bias, scale, alpha, temperature)
    chosen = backends.weights_backend(backend, scores, bias, alpha)
    if chosen == "native":
        from .kernels.native import native_weights

        return native_weights(scores.transpose(-2, -1).contiguous(), bias, scale, alpha, temperature)[0].mT.contiguous()
    if chosen == "compile":
        from .kernels.compiled import compiled_mixed_weights

        return compiled_mixed_weights(scores, bias, scale, alpha, temperature)
    return mixed_weights(scores, bias, scale, alpha, temperature)


def mask_to_bias(
    attn_mask: torch.Tensor, scores_shape: torch.Size, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """An SDPA mask (bool: True = attend; float: additive) as an additive bias in the scores' working
    dtype (float32, float64 for float64 inputs), with at least the scores' number of dims (leading 1s
    added: a 1-D ``(Nk,)`` mask becomes ``(1, …, 1, Nk)``), so that every back-end sees one layout."""
    if not isinstance(attn_mask, torch.Tensor):
        raise ValueError(f"attn_mask must be a torch.Tensor or None; got {type(attn_mask).__name__}")
    try:
        torch.broadcast_shapes(attn_mask.shape, scores_shape)
    except RuntimeError as error:
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the attention scores "
            f"{tuple(scores_shape)} (batch..., Nq, Nk)"
        ) from error
    work = working_dtype(dtype)
    if attn_mask.dtype == torch.bool:
        bias = torch.zeros(attn_mask.shape, dtype=work, device=attn_mask.device).masked_fill_(~attn_mask, float("-inf"))
    elif attn_mask.is_floating_point():
        bias = attn_mask.to(work)
    else:
        raise ValueError(f"attn_mask must be bool or floating point; got dtype {attn_mask.dtype}")
    if bias.dim() < len(scores_shape):
        bias = bias.view(*(1,) * (len(scores_shape) - bias.dim()), *bias.shape)
    return bias


def _check_tensors(**tensors: object) -> None:
    """q, k (and v): floating-point tensors of one dtype on one device with data (not ``meta``)."""
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32, float64); got {tensor.dtype}")
        if tensor.device.type == "meta":
            raise ValueError(f"{name} is on the meta device (it holds no data); move it to a real device")
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if tensor.dtype != first.dtype:
            raise TypeError(f"{first_name} and {name} must have the same dtype; got {first.dtype} and {tensor.dtype}")
        if tensor.device != first.device:
            raise ValueError(f"{first_name} and {name} must be on the same device; got {first.device} and {tensor.device}")


def _check_shapes(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor | None = None) -> None:
    value_ndim = query.ndim if value is None else value.ndim
    if query.ndim < 2 or key.ndim != query.ndim or value_ndim != query.ndim:
        shown = "" if value is None else f", value {tuple(value.shape)}"
        raise ValueError(
            f"query, key{'' if value is None else ' and value'} must have the same number (>= 2) of dims, "
            f"shaped (..., N, D); got query {tuple(query.shape)}, key {tuple(key.shape)}{shown}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must share the head dim D (last dim); got {query.shape[-1]} and {key.shape[-1]}"
        )
    if value is None:
        try:
            batch_shape(query.shape[:-2], key.shape[:-2])
        except RuntimeError as error:
            raise ValueError(
                f"batch dims of query {tuple(query.shape[:-2])} and key {tuple(key.shape[:-2])} do not broadcast"
            ) from error
        return
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
