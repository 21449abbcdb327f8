"""Tuning run for the Triton PLADIS kernel (CUDA only; run by tools/gpu_check.sh, not a test).

At the SDXL cross-attention shapes (fp16, Nk = 77, D = 64), for each α: dense SDPA, then the kernel at
each launch configuration (BLOCK_M, warps) and at the default number of fixed solver passes ± 1, each as
µs of GPU time per call (50 calls in a CUDA graph, replays timed by events, median of 7) and × SDPA, with the compiled kernel's
registers and spills and max |out − eager fp32|. ``--old PATH`` also times an older kernel module
(its ``triton_attention``), for before/after numbers on the same card. ``pladis_attention`` rows time
the public call; "launches timed" rows time plain back-to-back calls (Python and
launch cost included).

    python3 tools/bench_triton_configs.py [--old .gpu/old_triton_kernel.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics

import torch
import torch.nn.functional as F
import triton

import pladis
from pladis.kernels import triton_kernel as tk
from pladis.kernels import triton_launch as tl_

SHAPES = [(2, 10, 4096, 77, 64), (2, 20, 1024, 77, 64)]
ALPHAS = [1.25, 1.5, 1.75, 2.0]
CONFIGS = [(64, 4), (128, 8)]


def per_call_us(fn, calls: int = 50, reps: int = 7, graph: bool = True) -> float:
    """GPU time per call: ``calls`` calls captured in one CUDA graph and replayed between events (no
    Python launch cost in the number); ``graph=False``: plain back-to-back calls, launch cost included."""
    fn()
    torch.cuda.synchronize()
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(calls):
                fn()
        body = g.replay
    else:
        def body():
            for _ in range(calls):
                fn()
    body()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        body()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) * 1e3 / calls)
    return statistics.median(times)


def launcher(q, k, v, alpha, block_m, warps, passes, maxnreg=None):
    """A direct launch of the kernel at one configuration; returns (run, out, compiled kernel)."""
    out, grid, args, meta = tl_.launch_plan(
        q, k, v, None, 2.0, alpha, 1.0, passes=passes, block_m=block_m, warps=warps, maxnreg=maxnreg
    )
    compiled = tk._pladis_kernel[grid](*args, **meta)
    return (lambda: tk._pladis_kernel[grid](*args, **meta)), out, compiled


def bench_shape(shape, alphas, old, device, default_only=False, maxnregs=()) -> None:
    b, h, nq, nk, d = shape
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=gen, device=device, dtype=torch.float16) for n in (nq, nk, nk))
    sdpa = per_call_us(lambda: F.scaled_dot_product_attention(q, k, v))
    print(f"{str(shape):22s} {'':5s} {'sdpa':26s} {sdpa:8.2f} {1.0:7.2f}", flush=True)
    launched = per_call_us(lambda: F.scaled_dot_product_attention(q, k, v), graph=False)
    print(f"{str(shape):22s} {'':5s} {'sdpa, launches timed':26s} {launched:8.2f} {launched / sdpa:7.2f}", flush=True)
    for alpha in alphas:
        ref = pladis.pladis_attention(q.float(), k.float(), v.float(), alpha=alpha, backend="eager")
        default = tk.passes_for(alpha)
        variants = [(bm, w, default, None) for bm, w in CONFIGS[: 1 if default_only else None]]
        variants += [(64, 4, p, None) for p in (default - 1, default + 1) if p >= 1 and not default_only]
        variants += [(64, 4, default, cap) for cap in maxnregs]
        for bm, w, passes, cap in variants:
            run, out, compiled = launcher(q, k, v, alpha, bm, w, passes, cap)
            us = per_call_us(run)
            err = (out.float() - ref).abs().max().item()
            name = f"triton M{bm} w{w} P{passes}" + (f" R≤{cap}" if cap else "")
            print(f"{str(shape):22s} {alpha:5.2f} {name:26s} {us:8.2f} {us / sdpa:7.2f} "
                  f"{getattr(compiled, 'n_regs', -1):5d} {getattr(compiled, 'n_spills', -1):5d} {err:8.1e}", flush=True)
        api = lambda a=alpha: pladis.pladis_attention(q, k, v, alpha=a, backend="triton")  # noqa: E731
        for graph in (True, False):
            us = per_call_us(api, graph=graph)
            name = "pladis_attention" + ("" if graph else ", launches timed")
            print(f"{str(shape):22s} {alpha:5.2f} {name:26s} {us:8.2f} {us / sdpa:7.2f}", flush=True)
        if old is not None and alpha == 1.5:
            fn = lambda a=alpha: old.triton_attention(q, k, v, None, 2.0, a, 1.0)  # noqa: E731
            us = per_call_us(fn, calls=10, reps=3)
            err = (fn().float() - ref).abs().max().item()
            print(f"{str(shape):22s} {alpha:5.2f} {'old kernel (autotuned)':26s} {us:8.2f} {us / sdpa:7.2f} "
                  f"{'':5s} {'':5s} {err:8.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=None, help="path of an older triton kernel module to time too")
    parser.add_argument("--alphas", type=float, nargs="+", default=ALPHAS)
    parser.add_argument("--default-only", action="store_true", help="only the default configuration and passes")
    parser.add_argument("--maxnreg", type=int, nargs="*", default=[], help="register caps to time too")
    args = parser.parse_args()
    old = None
    if args.old:
        spec = importlib.util.spec_from_file_location("old_kernel", args.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}, triton {triton.__version__}")
    print(f"{'shape':22s} {'α':>5s} {'variant':26s} {'µs':>8s} {'× SDPA':>7s} {'regs':>5s} {'spill':>5s} {'max err':>8s}")
    for shape in SHAPES:
        bench_shape(shape, args.alphas, old, device, args.default_only, args.maxnreg)


if __name__ == "__main__":
    main()
