"""PLADIS under torch.compile and autograd on CUDA (a GPU check, not a test; the CPU tests cover the rest).

1. A diffusers cross-attention module at SDXL's 64×64 level (fp16, 10 heads, 2048-wide context) with
   ``PLADISAttnProcessor``: ``torch.compile(fullgraph=True)`` with inductor, default mode and
   ``mode="reduce-overhead"`` (CUDA graphs), against the uncompiled module; the compiled graph must
   run the Triton kernel (counted through the direct-launch path), and µs per call are printed.
2. Gradients on CUDA (fp32): backward through the module equals the same backward on CPU.

    python3 tools/gpu_compile_check.py
"""

from __future__ import annotations

import sys
import time

import torch
from bench_host_overhead import per_call_us as host_and_wall_us
from diffusers.models.attention_processor import Attention

import pladis
from pladis.kernels import triton_launch


def per_call_us(fn) -> float:
    """Wall µs per call of 50 back-to-back calls (median of 3)."""
    return host_and_wall_us(fn, calls=50, reps=3)[1]


def compiled_rows(device) -> int:
    failures = 0
    torch.manual_seed(0)
    attn = Attention(query_dim=640, cross_attention_dim=2048, heads=10, dim_head=64).to(device, torch.float16).eval()
    attn.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5))
    hidden = torch.randn(2, 4096, 640, device=device, dtype=torch.float16)
    context = torch.randn(2, 77, 2048, device=device, dtype=torch.float16)
    launches = []
    real_launch = triton_launch._launch
    triton_launch._launch = lambda plan, pointers: (launches.append(1), real_launch(plan, pointers))[1]
    with torch.no_grad():
        reference = attn(hidden, context)
        eager_us = per_call_us(lambda: attn(hidden, context))
        print(f"uncompiled                       {eager_us:8.1f} µs per call")
        for mode in ("default", "reduce-overhead"):
            torch._dynamo.reset()
            compiled = torch.compile(attn, fullgraph=True, mode=mode)
            begin = time.perf_counter()
            out = compiled(hidden, context).clone()
            first = time.perf_counter() - begin
            launches.clear()
            for _ in range(3):
                again = compiled(hidden, context).clone()
            err = (out.float() - reference.float()).abs().max().item()
            same = torch.equal(out, again)
            us = per_call_us(lambda c=compiled: c(hidden, context))
            ok = err < 2e-2 and same and torch.isfinite(out).all().item()
            failures += not ok
            # reduce-overhead replays a CUDA graph: the kernel runs without a host launch then
            ran = "kernel launched directly" if launches else "no host launches (graph replay)"
            print(f"{'PASS' if ok else 'FAIL'} compiled fullgraph, {mode:16s} {us:8.1f} µs per call "
                  f"(×{us / eager_us:.2f}), first call {first:.1f} s, max|compiled − uncompiled| {err:.1e}, "
                  f"repeat same bits: {same}, {ran}", flush=True)
    triton_launch._launch = real_launch
    return failures


def gradient_rows(device) -> int:
    torch.manual_seed(0)
    attn = Attention(query_dim=64, cross_attention_dim=96, heads=4, dim_head=16)
    attn.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5))
    hidden, context = torch.randn(2, 256, 64), torch.randn(2, 77, 96)
    grads = {}
    for dev in ("cpu", device):
        attn.to(dev).zero_grad()
        h = hidden.detach().to(dev).requires_grad_(True)  # a leaf on each device
        attn(h, context.to(dev)).square().sum().backward()
        grads[str(dev)] = (h.grad.cpu().clone(), attn.to_k.weight.grad.cpu().clone())  # .to() moves grads in place
    err = max((a - b).abs().max().item() for a, b in zip(grads["cpu"], grads[str(device)], strict=True))
    ok = err < 1e-3
    print(f"{'PASS' if ok else 'FAIL'} backward through PLADIS on CUDA vs CPU (fp32): max |Δgrad| {err:.1e}")
    return not ok


def main() -> None:
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    failures = compiled_rows(device) + gradient_rows(device)
    print(f"# {failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
