"""PLADIS weights (Eq. 15) fused by ``torch.compile``: one kernel per chunk of score rows.

The compiled function reads a chunk of scores and writes the mixed weights: row max, softmax, a fixed
number of sort-free threshold passes (:func:`pladis.alpha_entmax.threshold_passes`, no host sync),
Eq. 24 and the λ-mix, fused by inductor. The passes also flag the rows they solved; the few rows left
unfinished are recomputed eagerly with the exact solver (once per call, all together), so the result
is the eager one. The matmuls around it (QKᵀ and M·V) stay aten calls, chunked like the eager path.

The first call for a configuration (α, mask or not, the kind of logits, device, dtype) compiles
(seconds: docs/kernels.md); later calls of any chunk length reuse it (the row count is dynamic), and so
do other λ and temperatures: they enter the kernel as 0-dim tensors, not as constants. At most
``MAX_KERNELS`` configurations are kept (least recently used first out).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable

import torch

from .._checks import warn
from ..alpha_entmax import converged, support_weights, threshold_passes, threshold_start, warm_passes
from .availability import triton_available
from .eager import mix, mixed_weights, same_logits

__all__ = ["compiled_mixed_weights", "compiled_weights", "usable", "COMPILED_PASSES", "MAX_KERNELS"]

# Passes fused into the kernel: enough that unfinished rows are rare with attention-like scores, few
# enough to stay cheap (each costs about as much as the softmax); other α as the eager solver's warm
# passes (:func:`pladis.alpha_entmax.warm_passes`); see tools/bench_attention.py.
COMPILED_PASSES = {2.0: 3, 1.5: 3}
MAX_KERNELS = 16

_failure: list[str] = []  # the first compile error: torch.compile is not retried after it


def usable(device: torch.device) -> bool:
    """Whether ``torch.compile`` can run here: a C++ compiler for CPU, Triton for CUDA, no earlier failure."""
    if _failure:
        return False
    if device.type == "cpu":
        return _has_cxx()
    if device.type == "cuda":
        return triton_available()
    return False


@functools.cache
def _has_cxx() -> bool:
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if name)


@functools.lru_cache(maxsize=MAX_KERNELS)
def _compiled(alpha: float, masked: bool, shared_logits: bool, zero_scale: bool, device: str, passes: int) -> Callable:
    def weights(scores: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor, temperature: torch.Tensor):
        states: list[torch.Tensor] = []

        def solve(x: torch.Tensor, c: float, mean, exp_x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            state = threshold_start(x, c, alpha, mean, exp_x)
            for i in range(passes):
                state = threshold_passes(x, state, c, alpha, 1, fused=True, first=i, rough=i < passes - 1)
                states.extend(state)
            weights, total = support_weights(x, state[0], c, alpha, fused=True)
            return weights, total, converged(total, alpha)

        # The per-pass row states are returned (and dropped) so that inductor stores them once per row
        # instead of recomputing each pass's update inside every vector step of the next pass.
        mixed = mix(
            scores, bias, scale, alpha, temperature, solve, fused=True, shared_logits=shared_logits,
            zero_scale=zero_scale,
        )
        return mixed, states

    # A code object of its own per configuration: dynamo's recompile limit counts per code object.
    name = f"pladis_weights_{abs(hash((alpha, masked, shared_logits, zero_scale, device, passes)))}"
    weights.__code__ = weights.__code__.replace(co_name=name)
    return torch.compile(weights, fullgraph=True, dynamic=False)


def compiled_weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weights, done): :func:`pladis.kernels.eager.mixed_weights` by the compiled kernel, whose rows
    with ``done`` False still need the exact solver. ``scores`` is not modified."""
    shape, n_key = scores.shape, scores.shape[-1]
    rows = scores.reshape(-1, n_key)
    row_bias = None if bias is None else bias.expand(shape).reshape(-1, n_key).float()
    if rows.shape[0] > 1:
        torch._dynamo.mark_dynamic(rows, 0)
        if row_bias is not None:
            torch._dynamo.mark_dynamic(row_bias, 0)
    try:
        passes = COMPILED_PASSES.get(alpha, warm_passes(alpha))
        shared = same_logits(bias, temperature)
        fn = _compiled(alpha, bias is not None, shared, scale == 0.0, scores.device.type, passes)
        # λ and 1/T as 0-dim tensors: inputs of the compiled kernel, so a new value compiles nothing
        (weights, done), _ = fn(rows, row_bias, _scalar("scale", scale, scores), _scalar("temperature", temperature, scores))
    except Exception as error:  # no compiler, unsupported platform...: remember, warn once, go eager
        _failure.append(f"{type(error).__name__}: {error}")
        warn(f"pladis: torch.compile failed ({_failure[0][:300]}); using eager", stacklevel=2)
        return mixed_weights(scores.clone(), bias, scale, alpha, temperature), None
    return weights.view(shape), (None if done is None else done.view(*shape[:-1], 1))


def _scalar(role: str, value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-dim tensor on ``like``'s device, kept per role: λ and T must never be one tensor
    object (dynamo guards on inputs aliasing each other, and would recompile for λ = T)."""
    return _scalar_on(role, float(value), like.dtype, like.device)


@functools.lru_cache(maxsize=64)
def _scalar_on(role: str, value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(value, dtype=dtype, device=device)


def compiled_mixed_weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float
) -> torch.Tensor:
    """The full weights of :func:`compiled_weights`, unsolved rows redone exactly (for ``pladis_weights``)."""
    weights, done = compiled_weights(scores, bias, scale, alpha, temperature)
    if done is None or bool(done.all()):
        return weights
    n_key = scores.shape[-1]
    todo = (~done.reshape(-1)).nonzero().squeeze(1)
    row_bias = None if bias is None else bias.expand(scores.shape).reshape(-1, n_key)[todo].float()
    exact = mixed_weights(scores.reshape(-1, n_key)[todo], row_bias, scale, alpha, temperature)
    return weights.reshape(-1, n_key).index_copy_(0, todo, exact).view(scores.shape)
