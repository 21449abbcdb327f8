"""Host side of the fused PLADIS kernel (:mod:`pladis.kernels.triton_kernel`): arguments, launch plans
cached per input layout, and a direct launch of the compiled kernel.

A UNet step calls the kernel about 70 times with a handful of layouts, and where launches are the
bottleneck the host time per call is the cost that shows end to end: building the 50 arguments and
Triton's launcher, which re-derives the kernel's specialisation from every argument on each call, each
cost about as much as a whole SDPA call (docs/kernels.md). So:

* the plan (grid, scalar arguments, constexprs, output layout) is cached per input layout;
* once Triton has compiled the kernel for a plan, the compiled kernel is launched directly with the data
  pointers, as Triton's own launcher does after its cache lookup. The plan key holds everything Triton
  specialises these arguments on (shapes, strides, dtypes, devices; pointers must be 16-byte aligned, as
  the key assumes), a kept kernel is used only while the Triton settings its own lookup reads are
  unchanged, and each plan's first direct launch is compared bit for bit with Triton's own launch;
  an error or a difference there turns direct launches off for the process, with a warning.
  ``PLADIS_TRITON_DIRECT_LAUNCH=0`` turns them off from the start.

The output is allocated as (B, Nq, H, Dv) and returned as its (B, H, Nq, Dv) view, as SDPA's fused
kernels do, so the processor's transpose-and-reshape back to (B, Nq, H·Dv) copies nothing.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings

import torch
import triton
from triton import knobs
from triton.runtime import driver

from .._checks import batch_shape
from ..alpha_entmax import _MAX_ITER, _PHI_PASSES, _RESIDUAL_TOL
from .triton_kernel import (
    _BLOCK_M,
    _BLOCK_M_WIDE,
    _INTERPRET,
    _LOG2E,
    _MAX_REGISTERS,
    _STEP_EPS,
    _WARPS,
    _WIDE,
    _pladis_kernel,
    key_tiles,
    passes_for,
)

__all__ = ["triton_attention", "launch_plan", "direct_launch_enabled"]

_PARAMS = tuple(inspect.signature(_pladis_kernel.fn).parameters)
_N_TENSORS = 5  # Q, K, V, Bias, Out: the leading parameters, launched as data pointers
_MAX_PLANS = 512
_plans: dict[tuple, _Plan] = {}
_direct = {"enabled": not _INTERPRET and os.environ.get("PLADIS_TRITON_DIRECT_LAUNCH", "1") != "0"}
_register_cap = {"enabled": not _INTERPRET}  # off for good once a capped compile fails


def direct_launch_enabled() -> bool:
    """Whether compiled kernels are launched directly (see the module docstring)."""
    return _direct["enabled"]


class _Plan:
    """One layout's launch: Triton's path until ``kernel`` (its compiled kernel) is known and checked."""

    __slots__ = ("grid", "out_shape", "args", "meta", "tail", "kernel", "knobs", "checked")

    def __init__(self, grid: tuple[int, int], out_shape: tuple[int, ...], args: tuple, meta: dict) -> None:
        self.grid, self.out_shape, self.args, self.meta = grid, out_shape, args[_N_TENSORS:], meta
        # Every kernel parameter after the pointers, in signature order: scalars, then constexprs.
        self.tail = self.args + tuple(meta[name] for name in _PARAMS[len(args):])
        self.kernel = None
        self.knobs = None
        self.checked = False

    def triton_launch(self, tensors: tuple[torch.Tensor, ...]):
        """Triton's own launch of this plan on (Q, K, V, Bias, Out); returns its compiled kernel."""
        return _triton_launch(self.grid, (*tensors, *self.args), self.meta)


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
    on_current_device = query.device.type != "cuda" or query.device.index == torch.cuda.current_device()
    if not on_current_device:  # Triton launches on the current device (pipelines split over GPUs)
        with torch.cuda.device(query.device):
            return triton_attention(query, key, value, bias, scale, alpha, temperature)
    if not _plannable(query, key, value, bias):
        out, grid, args, meta = launch_plan(query, key, value, bias, scale, alpha, temperature)
        _triton_launch(grid, args, meta)
        return out
    plan_key = _plan_key(query, key, value, bias, scale, alpha, temperature)
    plan = _plans.get(plan_key)
    if plan is None:
        out, grid, args, meta = launch_plan(query, key, value, bias, scale, alpha, temperature)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[plan_key] = _Plan(grid, out.transpose(1, 2).shape, args, meta)
    else:
        out = torch.empty(plan.out_shape, dtype=value.dtype, device=value.device).transpose(1, 2)
    b = out if bias is None else bias.expand(*query.shape[:3], key.shape[-2])
    tensors = (query, key, value, b, out)
    if not _direct["enabled"]:
        plan.triton_launch(tensors)
        return out
    pointers = (query.data_ptr(), key.data_ptr(), value.data_ptr(), b.data_ptr(), out.data_ptr())
    # The plan key fixes every specialisation but the pointers' 16-byte alignment: direct launches (and
    # the kernel kept for them) need aligned pointers, and no pre-run hooks (Triton's launch runs them).
    direct = all(p % 16 == 0 for p in pointers) and not _pladis_kernel.pre_run_hooks
    if direct and plan.kernel is not None and plan.knobs == _knobs():
        if plan.checked:
            _launch(plan, pointers)
            return out
        if not torch.cuda.is_current_stream_capturing():
            _first_direct_launch(plan, pointers, tensors)
            return out
    kernel = plan.triton_launch(tensors)
    if direct:
        plan.kernel, plan.knobs, plan.checked = kernel, _knobs(), False
    return out


def _plan_key(query, key, value, bias, scale, alpha, temperature) -> tuple:
    """What the launch depends on but the data pointers: Triton specialises its integer arguments on
    their values (= 1, divisible by 16), its pointers on dtype and 16-byte alignment, never on floats."""
    return (
        query.shape, query.stride(), key.shape, key.stride(), value.shape, value.stride(),
        query.dtype, key.dtype, value.dtype, query.device, key.device, value.device,
        None if bias is None else (bias.shape, bias.stride(), bias.dtype, bias.device), scale, alpha, temperature,
    )


def _plannable(query, key, value, bias) -> bool:
    """4-D inputs with one (B, H) and a float32/16 bias on their device or none: the layouts the plan
    cache keys on."""
    batch = query.shape[:2]
    return (
        query.dim() == key.dim() == value.dim() == 4 and key.shape[:2] == batch and value.shape[:2] == batch
        and (bias is None or (bias.dim() == 4 and bias.dtype != torch.float64 and bias.device == query.device))
    )


def _triton_launch(grid: tuple[int, int], args: tuple, meta: dict):
    """Triton's own launch (compiling on first use); returns the compiled kernel. Should the register
    cap make the compile fail (ptxas: "insufficient registers"), the cap is dropped, from ``meta`` and
    from later plans, and the launch retried: nothing was launched, so nothing runs twice."""
    try:
        return _pladis_kernel[grid](*args, **meta)
    except Exception as error:
        if "maxnreg" not in meta or not _register_shortage(error):
            raise
    del meta["maxnreg"]
    _register_cap["enabled"] = False
    return _pladis_kernel[grid](*args, **meta)


def _register_shortage(error: Exception) -> bool:
    """Whether a compile failed for want of registers (ptxas: "Insufficient registers (128) ...")."""
    return type(error).__name__ == "PTXASError" or "insufficient registers" in str(error).lower()


def _knobs() -> tuple:
    """The Triton settings that ``JITFunction.run`` reads on every call and that change the kernel it
    picks: a kernel kept for direct launches is used only while they are what they were."""
    runtime = knobs.runtime
    return runtime.debug, knobs.compilation.instrumentation_mode, getattr(runtime, "add_stages_inspection_hook", None)


def _launch(plan: _Plan, pointers: tuple[int, ...]) -> None:
    """The compiled kernel's launch, as Triton's ``JITFunction.run`` makes it after its cache lookup."""
    kernel = plan.kernel
    device = driver.active.get_current_device()
    stream = driver.active.get_current_stream(device)
    args = pointers + plan.tail
    hooks = knobs.runtime
    kernel.run(
        *plan.grid, 1, stream, kernel.function, kernel.packed_metadata, kernel.launch_metadata(plan.grid, stream, *args),
        hooks.launch_enter_hook, hooks.launch_exit_hook, *args,
    )


def _first_direct_launch(plan: _Plan, pointers: tuple[int, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    """Launch through Triton into ``out`` and directly into a scratch copy; keep direct launches only if
    both give the same bits."""
    plan.triton_launch(tensors)
    out = tensors[-1]
    scratch = torch.empty_like(out)
    reason = None
    try:
        _launch(plan, pointers[:4] + (scratch.data_ptr(),))
        if not torch.equal(scratch.view(torch.uint8), out.view(torch.uint8)):  # bits: NaN ≠ NaN
            reason = "its output differs from Triton's launch"
    except Exception as error:  # an unexpected Triton internals change: stay on Triton's launcher
        reason = f"{type(error).__name__}: {error}"
    if reason is None:
        plan.checked = True
        return
    _direct["enabled"] = False
    warnings.warn(f"pladis: direct Triton launches turned off ({reason}); using Triton's launcher", RuntimeWarning, stacklevel=4)


def _as_bh(tensor: torch.Tensor, batch: torch.Size) -> torch.Tensor:
    """``tensor`` broadcast to ``batch`` + its last two dims, viewed with exactly two batch dims (B, H)."""
    if tensor.shape[:-2] == batch and len(batch) == 2:  # the common case, at no cost
        return tensor
    t = tensor.expand(*batch, *tensor.shape[-2:])
    if len(batch) == 0:
        return t.view(1, 1, *t.shape)
    if len(batch) == 1:
        return t.unsqueeze(0)
    if len(batch) > 2:
        t = t.reshape(-1, batch[-1], *t.shape[-2:])
    return t


def launch_plan(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    *,
    passes: int | None = None,
    block_m: int | None = None,
    warps: int = _WARPS,
    maxnreg: int | None = None,
) -> tuple[torch.Tensor, tuple[int, int], tuple, dict]:
    """(output, grid, arguments, meta-parameters) of one kernel launch; ``passes``, ``block_m``,
    ``warps`` and ``maxnreg`` (a register cap) override the defaults (tools/bench_triton_configs.py times
    the alternatives)."""
    batch = batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    n_query, head_dim = query.shape[-2:]
    n_key, dim_v = key.shape[-2], value.shape[-1]
    q, k, v = (_as_bh(t, batch) for t in (query, key, value))
    if len(batch) == 2:  # (B, Nq, H, Dv) memory, as SDPA's fused kernels write it
        out = torch.empty(q.shape[0], n_query, q.shape[1], dim_v, dtype=value.dtype, device=value.device)
        out = out.transpose(1, 2)
    else:
        out = torch.empty(*q.shape[:2], n_query, dim_v, dtype=value.dtype, device=value.device)
    if bias is not None:
        b = _as_bh(bias.to(torch.float32) if bias.dtype == torch.float64 else bias, batch)
        b = b.expand(*q.shape[:2], n_query, n_key)
        b_strides = b.stride()
    else:
        b, b_strides = out, (0, 0, 0, 0)
    same_logits = bias is None or temperature <= 1.0  # (S + b)/T, as eager.same_logits
    c = (alpha - 1.0) / temperature if same_logits else alpha - 1.0
    block_a, block_b = key_tiles(n_key)
    args = (
        q, k, v, b, out, *q.stride(), *k.stride(), *v.stride(), *b_strides, *out.stride(),
        q.shape[1], n_query, n_key, head_dim, dim_v,
        _LOG2E / math.sqrt(head_dim), 1.0 / temperature, c / _LOG2E, scale, _RESIDUAL_TOL / (alpha - 1.0),
        _STEP_EPS,
    )
    meta = dict(
        ALPHA=float(alpha), KPOW=1.0 / (alpha - 1.0), HAS_BIAS=bias is not None, SAME_LOGITS=same_logits,
        IEEE=query.dtype == torch.float32, PHI_PASSES=_PHI_PASSES, PASSES=passes or passes_for(alpha),
        MAX_ITER=_MAX_ITER + n_key, BLOCK_A=block_a, BLOCK_B=block_b, PAD_A=block_a > n_key,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)), BLOCK_DV=max(16, triton.next_power_of_2(dim_v)),
    )
    if block_m is None:
        block_m = _BLOCK_M_WIDE if block_a + block_b > _WIDE or _INTERPRET else _BLOCK_M
    meta.update(BLOCK_M=block_m, num_warps=warps, num_stages=1)
    if maxnreg is None and max(meta["BLOCK_D"], meta["BLOCK_DV"], block_a + block_b) <= _WIDE and _register_cap["enabled"]:
        maxnreg = _MAX_REGISTERS  # wider tiles need more (D = 160: ptxas asks for 158)
    if maxnreg is not None:
        meta["maxnreg"] = maxnreg
    grid = (triton.cdiv(n_query, block_m), q.shape[0] * q.shape[1])
    return out.reshape(*batch, n_query, dim_v) if len(batch) != 2 else out, grid, args, meta
