"""The cross-attention calls of one SD1.5 UNet forward, timed alone: what PLADIS adds to a denoiser step.

SD1.5 at 64×64 latents and batch 2 makes 16 cross-attention calls against 77 text tokens, 8 heads:
5 at 4096 queries (head dim 40), 5 at 1024 (80), 5 at 256 (160) and 1 at 64 (160). Each shape is timed
for dense SDPA and for ``pladis_attention`` (λ = 2, each α, ``--backend``); the script prints the added
milliseconds per forward, two rounds, for comparison with ``tools/bench_unet.py``'s whole step.

    .venv/bin/python tools/bench_cross_calls.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pladis.attention import pladis_attention

SD15_CROSS_CALLS = [(4096, 40, 5), (1024, 80, 5), (256, 160, 5), (64, 160, 1)]  # (queries, head dim, count)


def per_forward_ms(fn, inputs, reps: int) -> float:
    total = 0.0
    for q, k, v, count in inputs:
        fn(q, k, v)  # first call: compile / caches
        times = []
        for _ in range(reps):
            begin = time.perf_counter()
            fn(q, k, v)
            times.append(time.perf_counter() - begin)
        total += statistics.median(times) * count
    return total * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.25, 1.5, 1.75, 2.0])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    inputs = [
        (*(torch.randn(2, 8, n, d, generator=gen) for n in (queries, 77, 77)), count)
        for queries, d, count in SD15_CROSS_CALLS
    ]
    print(f"# SD1.5 cross-attention calls of one forward, fp32 CPU, {torch.get_num_threads()} threads, "
          f"backend={args.backend}, λ=2, median of {args.reps} per shape")
    for _ in range(args.rounds):
        dense = per_forward_ms(F.scaled_dot_product_attention, inputs, args.reps)
        row = [f"dense {dense:.1f} ms"]
        for alpha in args.alphas:
            ours = per_forward_ms(
                lambda q, k, v, a=alpha: pladis_attention(q, k, v, scale=2.0, alpha=a, backend=args.backend),
                inputs, args.reps,
            )
            row.append(f"α={alpha:g}: +{ours - dense:.1f} ms")
        print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
