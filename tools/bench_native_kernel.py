"""Time the native CPU kernel alone (no matmuls): nanoseconds per score of Eq. 15's weights.

    .venv/bin/python tools/bench_native_kernel.py                        # this checkout's kernel
    .venv/bin/python tools/bench_native_kernel.py --against old.c        # and another source, interleaved

Scores: keys-major 20 × 77 × 4096 (SDXL's 4096-query cross-attention, one batch of 2 × 10 heads), from
random q, k; 1 thread; the median of ``--reps`` calls per α. With ``--against`` both libraries are built
with the kernel's own flags and called in turn, so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from pladis.kernels import eager, native


def _build(source: Path, directory: Path) -> ctypes.CDLL:
    target = directory / f"{source.stem}_{abs(hash(source.read_text()))}.so"
    compiler = native._compiler()
    if compiler is None:
        raise SystemExit("no C compiler found (set $CC)")
    subprocess.run([compiler, *native._flag_sets()[0], str(source), "-o", str(target)], check=True)
    return native._bind(ctypes.CDLL(str(target)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="another native_kernel.c to time in the same run")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--alphas", type=float, nargs="+", default=[2.0, 1.5, 1.25, 1.75])
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    query, key = torch.randn(20, 4096, 64, generator=gen), torch.randn(20, 77, 64, generator=gen)
    scores = eager._keys_major_scores(query, key)
    with tempfile.TemporaryDirectory() as tmp:
        libraries = {"this checkout": _build(native.SOURCE, Path(tmp))}
        if args.against is not None:
            libraries[str(args.against)] = _build(args.against, Path(tmp))
        print(f"# native kernel, 1 thread, {tuple(scores.shape)} keys-major scores, median of {args.reps}")
        for alpha in args.alphas:
            times: dict[str, list[float]] = {name: [] for name in libraries}
            for _ in range(args.reps):
                for name, library in libraries.items():
                    native._library = lambda library=library: library  # this run's library for native_weights
                    work = scores.clone()
                    start = time.perf_counter()
                    native.native_weights(work, None, 2.0, alpha, 1.0)
                    times[name].append(time.perf_counter() - start)
            cells = [f"{name}: {statistics.median(t) / scores.numel() * 1e9:.2f} ns" for name, t in times.items()]
            print(f"alpha {alpha:<5} " + "   ".join(cells))


if __name__ == "__main__":
    main()
