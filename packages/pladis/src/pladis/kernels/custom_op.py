"""PLADIS attention (Eq. 15) as one opaque operator, ``torch.ops.pladis.attention``, for ``torch.compile``.

Traced by dynamo, the back-ends' own code would not compile as one graph: the eager solver finishes
its few unsolved rows after a data-dependent check, and the Triton launch reads data pointers. So
while ``torch.compile`` traces a model (``fullgraph=True`` included), :func:`pladis.kernels.backends.attention`
calls this operator instead: the compiled graph holds one node per attention call, and at run time
the node runs the back-end that would run without compilation (the Triton kernel on CUDA): the runner
:mod:`pladis.kernels.backends` registers here (:func:`register_runner`; this module imports nothing of it).

The operator returns 4-D results as (B, Nq, H, Dv) memory, the layout the Triton kernel writes (and
SDPA's fused kernels), viewed back as (B, H, Nq, Dv) by :func:`attention`: the usual transpose and
reshape after attention then copy nothing. Inference only: with autograd recording, the
differentiable path (:mod:`pladis.kernels.differentiable`) is traced instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._checks import batch_shape

__all__ = ["attention", "register_runner"]

Runner = Callable[..., torch.Tensor]
_runner: list[Runner] = []


def register_runner(run: Runner) -> None:
    """Set what the operator runs: ``run(query, key, value, bias, scale, alpha, temperature, backend)``."""
    _runner[:] = [run]


@torch.library.custom_op("pladis::attention", mutates_args=())
def _attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    backend: str,
) -> torch.Tensor:
    out = _runner[0](query, key, value, bias, scale, alpha, temperature, backend)
    if out.dim() == 4:
        return out.transpose(1, 2).contiguous()  # no copy when the Triton kernel wrote it
    return out.contiguous()


@_attention.register_fake
def _attention_fake(query, key, value, bias, scale, alpha, temperature, backend):
    batch = batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    n_query, dim_v = query.shape[-2], value.shape[-1]
    if len(batch) == 2:
        return query.new_empty((batch[0], n_query, batch[1], dim_v), dtype=value.dtype, device=value.device)
    return query.new_empty((*batch, n_query, dim_v), dtype=value.dtype, device=value.device)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    backend: str,
) -> torch.Tensor:
    """Eq. 15 through ``torch.ops.pladis.attention``: the same values as the back-end call."""
    out = _attention(query, key, value, bias, float(scale), float(alpha), float(temperature), backend)
    return out.transpose(1, 2) if out.dim() == 4 else out
