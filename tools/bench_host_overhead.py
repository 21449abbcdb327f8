"""Host (CPU) time per call of PLADIS on CUDA, next to dense attention (a GPU benchmark, not a test).

On a machine where kernel launches are the bottleneck, the host time per call is what shows end to end.
Rows (fp16, SDXL's 64×64 level: B=2, H=10, Nq=4096, Nk=77, D=64), each as µs per call of host time to
issue 200 back-to-back calls ("host") and of wall time including the final sync ("wall"), × the dense row:
``F.scaled_dot_product_attention`` vs ``pladis_attention(backend="triton")`` with and without direct
launches (pladis.kernels.triton_launch); a diffusers ``Attention`` module (cross-attention, 640 → 2048
context) with ``AttnProcessor2_0`` vs ``PLADISAttnProcessor``; and one SDXL UNet forward (batch 2,
128×128, random weights), dense vs PLADIS at each α, two rounds: host ms to issue it, wall ms, and the
sum of its GPU kernel times (torch profiler) — the GPU's share, apart from what the host adds.

    python3 tools/bench_host_overhead.py [--no-unet]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import pladis
from pladis.kernels import triton_launch


def per_call_us(fn, calls: int = 200, reps: int = 5) -> tuple[float, float]:
    """(host µs, wall µs) per call: medians over ``reps`` runs of ``calls`` back-to-back calls."""
    fn()
    torch.cuda.synchronize()
    host, wall = [], []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        issued = time.perf_counter()
        torch.cuda.synchronize()
        done = time.perf_counter()
        host.append((issued - start) / calls * 1e6)
        wall.append((done - start) / calls * 1e6)
    return statistics.median(host), statistics.median(wall)


def row(name: str, times: tuple[float, float], base: tuple[float, float]) -> None:
    host, wall = times
    print(f"{name:44s} host {host:8.1f}  wall {wall:8.1f}   × dense: host {host / base[0]:5.2f}  wall {wall / base[1]:5.2f}", flush=True)


def attention_rows(device) -> None:
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(2, n, 10, 64, generator=gen, device=device, dtype=torch.float16).transpose(1, 2) for n in (4096, 77, 77))
    base = per_call_us(lambda: F.scaled_dot_product_attention(q, k, v))
    row("sdpa", base, base)
    for direct in (True, False):
        triton_launch._direct["enabled"] = direct
        triton_launch._plans.clear()
        times = per_call_us(lambda: pladis.pladis_attention(q, k, v, alpha=1.5, backend="triton"))
        row(f"pladis_attention triton, direct launch {'on' if direct else 'off'}", times, base)
    triton_launch._direct["enabled"] = True

    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    attn = Attention(query_dim=640, cross_attention_dim=2048, heads=10, dim_head=64).to(device, torch.float16).eval()
    hidden = torch.randn(2, 4096, 640, generator=gen, device=device, dtype=torch.float16)
    context = torch.randn(2, 77, 2048, generator=gen, device=device, dtype=torch.float16)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        base = per_call_us(lambda: attn(hidden, context))
        row("Attention module, AttnProcessor2_0", base, base)
        for direct in (True, False):
            triton_launch._direct["enabled"] = direct
            triton_launch._plans.clear()
            attn.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5))
            row(f"Attention module, PLADIS, direct launch {'on' if direct else 'off'}", per_call_us(lambda: attn(hidden, context)), base)
    triton_launch._direct["enabled"] = True


def gpu_kernel_ms(fn) -> float:
    """Sum of the GPU kernel times of one call of ``fn`` (torch profiler): the GPU's share of the work,
    whatever the host adds around it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(e.device_time_total for e in prof.key_averages() if e.device_time_total > 0) / 1e3


def unet_rows(device, rounds: int = 2) -> None:
    from bench_unet import build, processors

    unet, inputs = build("sdxl", device, torch.float16)
    with torch.no_grad():
        for _ in range(rounds):
            base = None
            for variant in ("dense", "pladis 1.25", "pladis 1.5", "pladis 1.75", "pladis 2.0"):
                unet.set_attn_processor(processors(unet, variant, "auto"))
                host, wall = per_call_us(lambda: unet(**inputs), calls=1, reps=9)
                gpu = gpu_kernel_ms(lambda: unet(**inputs))
                base = base or (host, wall, gpu)
                print(f"{'SDXL UNet forward, ' + variant:34s} host {host / 1e3:6.1f} ms  wall {wall / 1e3:6.1f} ms  "
                      f"GPU kernels {gpu:5.1f} ms   × dense: host {host / base[0]:5.3f}  wall {wall / base[1]:5.3f}  "
                      f"GPU {gpu / base[2]:5.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-unet", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(device)}; µs per call")
    attention_rows(device)
    if not args.no_unet:
        unet_rows(device)


if __name__ == "__main__":
    main()
