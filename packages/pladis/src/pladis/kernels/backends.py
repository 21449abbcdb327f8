"""Which implementation computes PLADIS attention (Eq. 15): ``eager``, ``compile``, ``triton`` or ``native``.

``auto`` picks, for the inputs at hand:

* ``native`` on CPU for α > 1 when a C compiler built :mod:`pladis.kernels.native`'s kernel (one fused
  C kernel for the per-row work, compiled once per machine in about a second and cached on disk);
* ``triton`` on CUDA when Triton imports and the inputs fit its kernel (Nk ≤ 256, D, Dv ≤ 256, α > 1)
  — one fused pass, nothing of size Nq×Nk in memory (CPU tensors run it only when asked for by name,
  under ``TRITON_INTERPRET=1``: the interpreter is for tests);
* ``compile`` on CUDA when the kernel does not fit, and on CPU (without the native kernel, or for
  α = 1) when the score tensor is large (≥ ``AUTO_COMPILE_MIN_SCORES`` values) — if ``torch.compile`` works here (it needs a C++ compiler on
  CPU, Triton on CUDA; a failure is remembered and eager used). Its first call per configuration
  compiles (seconds; up to ≈ 20 s with a cold inductor cache: see ``tools/bench_attention.py``);
* ``eager`` otherwise.

When autograd records through the inputs, :func:`attention` runs :mod:`pladis.kernels.differentiable`
instead (exact gradients; the fast paths are inference-only). Inside a ``torch.compile`` trace
(inference) it calls the opaque operator of :mod:`pladis.kernels.custom_op`, which makes the choice
above when the compiled graph runs.

An explicit back-end that cannot run (Triton missing, CPU tensors without ``TRITON_INTERPRET=1``,
unsupported shapes, no compiler, ``native`` on a GPU) falls back with a warning to what ``auto`` picks
without it; an unknown name raises.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import torch

from .._checks import batch_shape
from . import custom_op, differentiable, eager

__all__ = ["BACKENDS", "AUTO_COMPILE_MIN_SCORES", "attention", "choose", "triton_available", "weights_backend"]

BACKENDS = ("auto", "eager", "compile", "triton", "native")
AUTO_COMPILE_MIN_SCORES = 1 << 20
TRITON_MAX_KEYS = 256
TRITON_MAX_HEAD_DIM = 256


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else ``ValueError``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return backend


@functools.cache
def triton_available() -> bool:
    """Whether the ``triton`` package imports (cached)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # a broken install counts as missing
        return False
    return True


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
        warnings.warn(f"pladis: native kernel unavailable ({reason}); falling back", RuntimeWarning, stacklevel=4)
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
            warnings.warn(f"pladis: backend={backend!r} is inference-only; using eager", RuntimeWarning, stacklevel=3)
        return "eager"
    return _fastest(backend, query, key, value, bias, alpha)


def _fastest(backend: str, query, key, value, bias, alpha: float) -> str:
    """:func:`choose` for a checked, non-eager ``backend`` outside autograd and tracing."""
    if _native_chosen(backend, query, alpha, bias):
        return "native"
    if backend == "native":
        backend = "auto"
    if backend == "triton" or (backend == "auto" and query.device.type == "cuda"):
        reason = triton_fits(query, key, value, alpha, bias)
        if reason is None:
            return "triton"
        if backend == "triton":
            warnings.warn(f"pladis: Triton kernel unavailable ({reason}); falling back", RuntimeWarning, stacklevel=3)
    from . import compiled

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
    check_backend(backend)
    if backend == "eager" or torch.compiler.is_compiling():
        return "eager"
    if _native_chosen(backend, scores, alpha, bias):
        return "native"
    from . import compiled

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
    expanded, as a view, before any back-end sees it)."""
    query = cover_mask_batch(query, key, value, bias)
    if query.shape[-2] == 0 or key.shape[-2] == 0:  # as SDPA: no queries, an empty output; no keys, zeros
        check_backend(backend)
        batch = batch_shape(query.shape[:-2], key.shape[:-2])
        return torch.matmul(value.new_zeros(*batch, query.shape[-2], key.shape[-2]), value)
    if needs_grad(query, key, value, bias):
        if check_backend(backend) not in ("auto", "eager"):
            warnings.warn(
                f"pladis: backend={backend!r} is inference-only; autograd is recording, so the differentiable "
                "path runs", RuntimeWarning, stacklevel=3,
            )
        return differentiable.attention(query, key, value, bias, scale, alpha, temperature)
    if torch.compiler.is_compiling():
        return custom_op.attention(query, key, value, bias, scale, alpha, temperature, check_backend(backend))
    chosen = "eager" if check_backend(backend) == "eager" else _fastest(backend, query, key, value, bias, alpha)
    if chosen == "triton":
        from .triton_launch import triton_attention

        return triton_attention(query, key, value, bias, scale, alpha, temperature)
    if chosen == "native":
        from .native import native_weights

        return eager.attention(
            query, key, value, bias, scale, alpha, temperature, weights_fn=native_weights, keys_major=True
        )
    if chosen == "compile":
        from .compiled import compiled_weights

        return eager.attention(query, key, value, bias, scale, alpha, temperature, weights_fn=compiled_weights)
    return eager.attention(query, key, value, bias, scale, alpha, temperature)
