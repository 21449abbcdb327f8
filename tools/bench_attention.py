"""Benchmark PLADIS attention (Eq. 15) against dense SDPA and the literal two-attention reference.

At SDXL cross-attention shapes (B=2, H=10, Nq=4096 and B=2, H=20, Nq=1024; Nk=77, D=64), for each α:

* ``sdpa``: ``F.scaled_dot_product_attention`` (dense, the baseline of every ratio);
* ``literal``: Eq. 15 as the paper writes it, two attentions with the `entmax` package
  (entmax15 / sparsemax, bisection otherwise);
* ``ours[<backend>]``: ``pladis.pladis_attention`` with each available back-end, and ``auto``.

fp32 on CPU; fp16 on CUDA (``--device cuda``). Timings are medians of interleaved repetitions (CUDA:
events around 20 back-to-back calls, after synchronisation). The first call of each back-end is timed apart: for ``compile`` it is
the compile time, reported, not hidden; the native kernel's build (or load from its cache) is timed
before all and printed. ``err`` is the max |ours − literal| of that call.

    .venv/bin/python tools/bench_attention.py                       # CPU, all threads
    .venv/bin/python tools/bench_attention.py --threads 1 --reps 9  # quieter on a shared machine
    python3 tools/bench_attention.py --device cuda --dtype float16  # GPU
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

import pladis
from pladis.kernels import backends, compiled, native

SHAPES = [(2, 10, 4096, 77, 64), (2, 20, 1024, 77, 64)]
ALPHAS = [1.25, 1.5, 1.75, 2.0]


def literal_eq15(q, k, v, scale=2.0, alpha=1.5):
    """Two attentions, as Eq. 15 is written, with the `entmax` package for the sparse one."""
    import entmax

    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if alpha == 1.5:
        sparse = entmax.entmax15(s, dim=-1)
    elif alpha == 2.0:
        sparse = entmax.sparsemax(s, dim=-1)
    else:
        sparse = entmax.entmax_bisect(s, alpha)
    dense_out = torch.softmax(s, -1) @ v
    return dense_out + scale * (sparse.to(v.dtype) @ v - dense_out)


def timer(device: torch.device, calls: int = 1):
    """ms per call of ``fn``; on CUDA ``calls`` back-to-back launches between two events (one launch
    alone would mostly time the launch and the event, not the kernel)."""

    def run(fn, calls: int = calls) -> float:
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(calls):
                fn()
            stop.record()
            torch.cuda.synchronize()
            return start.elapsed_time(stop) / calls
        begin = time.perf_counter()
        fn()
        return (time.perf_counter() - begin) * 1e3

    return run


def available_backends(device: torch.device, requested: list[str] | None) -> list[str]:
    names = ["eager"]
    if compiled.usable(device) and device.type == "cpu":
        names.append("compile")
    if device.type == "cpu" and native.usable(device):
        names.append("native")
    if device.type == "cuda" and backends.triton_available():
        names.append("triton")
    names.append("auto")
    return [n for n in names if requested is None or n in requested]


def bench_shape(shape, alphas, names, dtype, device, reps, with_literal):
    b, h, nq, nk, d = shape
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=gen, device=device, dtype=dtype) for n in (nq, nk, nk))
    run = timer(device, calls=20 if device.type == "cuda" else 1)
    rows = []
    for alpha in alphas:
        fns = {"sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
        if with_literal:
            fns["literal"] = lambda a=alpha: literal_eq15(q, k, v, 2.0, a)
        for name in names:
            fns[f"ours[{name}]"] = lambda a=alpha, n=name: pladis.pladis_attention(q, k, v, alpha=a, backend=n)
        reference = literal_eq15(q.float(), k.float(), v.float(), 2.0, alpha) if with_literal else None
        first, errors = {}, {}
        for key, fn in fns.items():  # first calls: compile / autotune / caches, timed apart
            first[key] = run(fn, calls=1)
            if key.startswith("ours") and reference is not None:
                errors[key] = (fn().float() - reference).abs().max().item()
        times = {key: [] for key in fns}
        for _ in range(reps):  # interleaved, so that load on a shared machine hits every variant alike
            for key, fn in fns.items():
                times[key].append(run(fn))
        sdpa = statistics.median(times["sdpa"])
        for key in fns:
            med = statistics.median(times[key])
            rows.append((shape, alpha, key, med, med / sdpa, first[key], errors.get(key)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or float16 (CUDA default)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (5 on CPU, 50 on CUDA)")
    parser.add_argument("--alphas", type=float, nargs="+", default=ALPHAS)
    parser.add_argument("--backends", nargs="+", default=None, help="subset of eager compile native triton auto")
    parser.add_argument("--no-literal", action="store_true", help="skip the `entmax`-package reference")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = args.reps or (50 if device.type == "cuda" else 5)
    begin = time.perf_counter()
    native_ready = device.type == "cpu" and native.usable(device)  # builds the kernel when not cached
    native_s = time.perf_counter() - begin
    names = available_backends(device, args.backends)
    warnings.simplefilter("ignore", RuntimeWarning)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# PLADIS attention: {label}, {dtype}, torch {torch.__version__}, λ=2, median of {reps}")
    if device.type == "cpu":
        state = f"ready in {native_s:.2f} s ({native.library_path()})" if native_ready else native.failure()
        print(f"# native kernel: {state}; a build on an empty cache (PLADIS_CACHE_DIR) is the first call's cost")
    print("# auto picks: " + ", ".join(
        f"{s[2]}q→{backends.choose('auto', torch.empty(s[0], s[1], s[2], s[4], device=device, dtype=dtype), torch.empty(s[0], s[1], s[3], s[4], device=device, dtype=dtype), torch.empty(s[0], s[1], s[3], s[4], device=device, dtype=dtype), None, 1.5)}"
        for s in SHAPES))
    print(f"{'shape (B,H,Nq,Nk,D)':22s} {'α':>5s} {'variant':16s} {'ms':>9s} {'× SDPA':>8s} {'1st call ms':>12s} {'err vs literal':>15s}")
    for shape in SHAPES:
        rows = bench_shape(shape, args.alphas, names, dtype, device, reps, not args.no_literal)
        for row in rows:
            shape_, alpha, key, med, ratio, first, err = row
            err_s = f"{err:.1e}" if err is not None else ""
            print(f"{str(shape_):22s} {alpha:5.2f} {key:16s} {med:9.4g} {ratio:8.2f} {first:12.1f} {err_s:>15s}", flush=True)


if __name__ == "__main__":
    main()
