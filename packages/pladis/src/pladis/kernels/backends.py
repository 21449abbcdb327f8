"""Which implementation computes PLADIS attention (Eq. 15): ``eager``, ``compile``, ``triton`` or ``native``.

``auto`` picks, for the inputs at hand:

* ``native`` on CPU for α > 1 when a C compiler built :mod:`pladis.kernels.native`'s kernel (one fused
  C kernel for the per-row work, compiled once per machine and cached on disk);
* ``triton`` on CUDA when Triton imports and the inputs fit its kernel (Nk ≤ 256, D, Dv ≤ 256, α > 1)
  — one fused pass, nothing of size Nq×Nk in memory (CPU tensors run it only when asked for by name,
  under ``TRITON_INTERPRET=1``: the interpreter is for tests);
* ``compile`` on CUDA when the kernel does not fit, and on CPU (without the native kernel, or for
  α = 1) when the score tensor is large (≥ ``AUTO_COMPILE_MIN_SCORES`` values) — if ``torch.compile``
  works here (it needs a C++ compiler on CPU, Triton on CUDA; a failure is remembered and eager used).
  Its first call per α and layout compiles (seconds, more with a cold inductor cache: docs/kernels.md);
  λ and the temperature are kernel inputs, so other values reuse it;
* ``eager`` otherwise, and always for float64 inputs (computed in float64).

When autograd records through the inputs, :func:`attention` runs :mod:`pladis.kernels.differentiable`
instead (exact gradients; the fast paths are inference-only). Inside a ``torch.compile`` trace
(inference) it calls the opaque operator of :mod:`pladis.kernels.custom_op`, which makes the choice
above when the compiled graph runs.

An explicit back-end that cannot run (Triton missing, CPU tensors without ``TRITON_INTERPRET=1``,
unsupported shapes, no compiler, ``native`` on a GPU) falls back with a one-line ``pladis: ...`` warning
to what ``auto`` picks without it; an unknown name raises. The arguments are trusted: the public entry
points check them once (:class:`pladis._checks.PLADISSettings`, :func:`pladis.attention.mask_to_bias`).
"""

from __future__ import annotations

import os

import torch

from .._checks import BACKENDS, batch_shape, check_backend, warn
from . import compiled, custom_op, differentiable, eager
from .availability import triton_available

__all__ = [
    "BACKENDS", "AUTO_COMPILE_MIN_SCORES", "attention", "attention_with_lse", "check_backend", "choose", "triton_available",
    "weights_backend",
]

AUTO_COMPILE_MIN_SCORES = 1 << 20
TRITON_MAX_KEYS = 256
TRITON_MAX_HEAD_DIM = 256


def triton_fits(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, alpha: float, bias: torch.Tensor | None = None
) -> str | None:
    """Why the Triton kernel cannot take these inputs (None when it can)."""
    if not triton_available():
        return "triton is not installed"
    if query.device.type != "cuda" and not (query.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"):
        return f"tensors are on {query.device.type} (Triton needs CUDA, or CPU with TRITON_INTERPRET=1)"
    if not (query.dtype == key.dtype == value.dtype) or query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"dtypes {query.dtype}/{key.dtype}/{value.dtype} (needs one of float16, bfloat16, float32)"
    if not query.device == key.device == value.device:
        return "query, key and value are on different devices"
    if bias is not None and bias.device != query.device:
        return f"the mask is on {bias.device}, the query on {query.device}"
    if alpha == 1.0:
        return "alpha = 1 (two softmaxes) is left to the other back-ends"
    if key.shape[-2] > TRITON_MAX_KEYS:
        return f"{key.shape[-2]} keys (the kernel holds a row of at most {TRITON_MAX_KEYS} in registers)"
    if max(query.shape[-1], value.shape[-1]) > TRITON_MAX_HEAD_DIM:
        return f"head dim {max(query.shape[-1], value.shape[-1])} > {TRITON_MAX_HEAD_DIM}"
    return None


def cover_mask_batch(query, key, value, bias: torch.Tensor | None) -> torch.Tensor:
    """``query`` expanded (a view) to the mask's batch where that is larger than the inputs' batch."""
    if bias is None or bias.dim() <= 2:
        return query
    batch = batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    lead = bias.shape[:-2]
    if len(lead) <= len(batch) and all(m in (1, b) for m, b in zip(lead, batch[len(batch) - len(lead):], strict=True)):
        return query  # the usual case, checked without torch.broadcast_shapes' cost
    return query.expand(*torch.broadcast_shapes(batch, lead), *query.shape[-2:])


def native_fits(query: torch.Tensor, alpha: float, bias: torch.Tensor | None = None) -> str | None:
    """Why the native CPU kernel cannot take these inputs (None when it can); builds it on first use."""
    if query.device.type != "cpu":
        return f"tensors are on {query.device.type} (the native kernel is for the CPU)"
    if query.dtype == torch.float64:
        return "float64 inputs are computed in float64 by eager (the kernel works in float32)"
    if bias is not None and bias.device != query.device:
        return f"the mask is on {bias.device}, the query on {query.device}"
    if alpha == 1.0:
        return "alpha = 1 (two softmaxes) is left to the other back-ends"
    from . import native

    if not native.usable(query.device):
        return native.failure() or "unavailable"
    return None


def _native_chosen(backend: str, query: torch.Tensor, alpha: float, bias: torch.Tensor | None) -> bool:
    """Whether ``backend`` ("native", or "auto" on CPU) runs the native kernel; an explicit "native" that
    cannot warns (the caller then falls back as for "auto")."""
    if backend != "native" and not (backend == "auto" and query.device.type == "cpu"):
        return False
    reason = native_fits(query, alpha, bias)
    if reason is not None and backend == "native":
        warn(f"pladis: native kernel unavailable ({reason}); falling back", stacklevel=4)
    return reason is None


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def choose(
    backend: str,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None = None,
    alpha: float = 1.5,
) -> str:
    """The implementation that runs for ``backend`` on these inputs (see the module docstring); "eager"
    with autograd recording or inside a ``torch.compile`` trace."""
    check_backend(backend)
    if backend == "eager":
        return "eager"
    if needs_grad(query, key, value, bias) or torch.compiler.is_compiling():
        if backend != "auto":
            warn(f"pladis: backend={backend!r} is inference-only; using eager", stacklevel=3)
        return "eager"
    return _fastest(backend, query, key, value, bias, alpha)


def _fastest(backend: str, query, key, value, bias, alpha: float) -> str:
    """:func:`choose` for a checked, non-eager ``backend`` outside autograd and tracing."""
    if query.dtype == torch.float64:
        return "eager"
    if _native_chosen(backend, query, alpha, bias):
        return "native"
    if backend == "native":
        backend = "auto"
    if backend == "triton" or (backend == "auto" and query.device.type == "cuda"):
        reason = triton_fits(query, key, value, alpha, bias)
        if reason is None:
            return "triton"
        if backend == "triton":
            warn(f"pladis: Triton kernel unavailable ({reason}); falling back", stacklevel=3)
    if not compiled.usable(query.device):
        return "eager"
    if backend == "compile" or query.device.type == "cuda":
        return "compile"
    if backend == "triton":  # CPU without the interpreter: what "eager" would do
        return "eager"
    n_scores = query.shape[-2] * key.shape[-2] * batch_shape(query.shape[:-2], key.shape[:-2]).numel()
    return "compile" if backend == "auto" and n_scores >= AUTO_COMPILE_MIN_SCORES else "eager"


def weights_backend(backend: str, scores: torch.Tensor, bias: torch.Tensor | None, alpha: float = 1.5) -> str:
    """``eager``, ``compile`` or ``native`` for :func:`pladis.attention.pladis_weights` (no Triton: it
    never stores M; ``triton`` computes them like ``compile``)."""
    if backend == "eager" or torch.compiler.is_compiling() or scores.dtype == torch.float64:
        return "eager"
    if _native_chosen(backend, scores, alpha, bias):
        return "native"
    if backend in ("auto", "native") and (scores.device.type != "cpu" or scores.numel() < AUTO_COMPILE_MIN_SCORES):
        return "eager"
    return "compile" if compiled.usable(scores.device) else "eager"


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    backend: str = "auto",
) -> torch.Tensor:
    """Eq. 15 by the implementation :func:`choose` picks (see the module docstring for autograd and
    ``torch.compile``). A mask whose batch is larger than the inputs' gets its own outputs (the query is
    expanded, as a view, before any back-end sees it). The arguments are trusted (see the module
    docstring)."""
    query = cover_mask_batch(query, key, value, bias)
    if query.shape[-2] == 0 or key.shape[-2] == 0:  # as SDPA: no queries, an empty output; no keys, zeros
        batch = batch_shape(query.shape[:-2], key.shape[:-2])
        return torch.matmul(value.new_zeros(*batch, query.shape[-2], key.shape[-2]), value)
    if needs_grad(query, key, value, bias):
        if backend not in ("auto", "eager"):
            warn(
                f"pladis: backend={backend!r} is inference-only; autograd is recording, so the differentiable "
                "path runs", stacklevel=3,
            )
        return differentiable.attention(query, key, value, bias, scale, alpha, temperature)
    if torch.compiler.is_compiling():
        return custom_op.attention(query, key, value, bias, scale, alpha, temperature, backend)
    return _run(query, key, value, bias, scale, alpha, temperature, backend)


def attention_with_lse(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`attention`, and the float32 row log-sum-exps of the dense logits S + b when the native
    kernel runs it (it has them from its softmax pass; None from the other back-ends)."""
    query = cover_mask_batch(query, key, value, bias)
    if (query.shape[-2] == 0 or key.shape[-2] == 0 or needs_grad(query, key, value, bias)
            or torch.compiler.is_compiling() or backend == "eager"
            or _fastest(backend, query, key, value, bias, alpha) != "native"):
        return attention(query, key, value, bias, scale, alpha, temperature, backend), None
    from .native import native_weights

    lse = torch.empty(*batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2]), query.shape[-2],
                      device=query.device)
    out = eager.attention(query, key, value, bias, scale, alpha, temperature, weights_fn=native_weights,
                          keys_major=True, lse=lse)
    return out, lse


def _run(query, key, value, bias, scale: float, alpha: float, temperature: float, backend: str) -> torch.Tensor:
    """Eq. 15 by the fastest implementation for ``backend`` (inference, outside a trace): what the
    operator of :mod:`.custom_op` runs when a compiled graph calls it."""
    chosen = "eager" if backend == "eager" else _fastest(backend, query, key, value, bias, alpha)
    if chosen == "triton":
        from .triton_launch import triton_attention

        return triton_attention(query, key, value, bias, scale, alpha, temperature)
    if chosen == "native":
        from .native import native_weights

        return eager.attention(
            query, key, value, bias, scale, alpha, temperature, weights_fn=native_weights, keys_major=True
        )
    if chosen == "compile":
        return eager.attention(query, key, value, bias, scale, alpha, temperature, weights_fn=compiled.compiled_weights)
    return eager.attention(query, key, value, bias, scale, alpha, temperature)


custom_op.register_runner(_run)
