"""End-to-end cost of PLADIS: one denoiser forward of the real SD1.5 / SDXL UNet architectures.

Random weights, real ``UNet2DConditionModel`` configurations (written out below): SD1.5 at batch 2,
64×64 latents, fp32 (the CPU run) and SDXL at batch 2, 128×128 latents, fp16 (where a GPU is present).
Variants: ``dense`` (diffusers' own processors), ``pladis α=…`` (``pladis.PLADISAttnProcessor(2.0, α)``
on every cross-attention module, back-end ``--backend``) and ``literal α=…`` (two attentions per layer
with the `entmax` package, as Eq. 15 is written). Step times are medians of interleaved repetitions
(the order reversed every other round); 'paired ×' is the median over rounds of variant ÷ dense within
the round, robust to a machine whose speed drifts. ``--cuda-graph`` captures each variant's forward in a
CUDA graph and times replays with CUDA events: the host's Python and launch time drop out, so the step
time is the GPU's (how a deployment with CUDA graphs or ``torch.compile(mode="reduce-overhead")`` runs);
peak memory is ``torch.cuda.max_memory_allocated`` on GPU and, on CPU, the peak RSS of a fresh process
running one forward (total, and above the RSS before the forward).

    .venv/bin/python tools/bench_unet.py --arch sd15 --threads 2
    python3 tools/bench_unet.py --arch sdxl --device cuda [--cuda-graph]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch

import pladis

SD15 = dict(
    sample_size=64, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)
SDXL = dict(
    sample_size=128, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    norm_num_groups=32, act_fn="silu",
)
ARCHS = {"sd15": (SD15, 64, 768), "sdxl": (SDXL, 128, 2048)}


class LiteralEq15Processor:
    """Cross-attention as Eq. 15 is written: a softmax attention and an `entmax` attention, mixed."""

    def __init__(self, scale: float, alpha: float) -> None:
        self.scale, self.alpha = scale, alpha

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        from bench_attention import literal_eq15

        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        q, k, v = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        out = literal_eq15(q, k, v, self.scale, self.alpha)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def build(arch: str, device: torch.device, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel

    config, size, context = ARCHS[arch]
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**config).to(dtype).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    inputs = dict(
        sample=torch.randn(2, 4, size, size, generator=gen, device=device, dtype=dtype),
        timestep=torch.tensor(500, device=device),
        encoder_hidden_states=torch.randn(2, 77, context, generator=gen, device=device, dtype=dtype),
    )
    if arch == "sdxl":
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, 1280, generator=gen, device=device, dtype=dtype),
            "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]] * 2, device=device, dtype=dtype),
        }
    return unet, inputs


def processors(unet, variant: str, backend: str) -> dict:
    """The attn_processors dict for ``variant``: "dense", "pladis α" or "literal α"."""
    from diffusers.models.attention_processor import Attention

    if not hasattr(unet, "_dense_processors"):
        unet._dense_processors = dict(unet.attn_processors)  # diffusers' own, before any swap
    procs = dict(unet._dense_processors)
    if variant == "dense":
        return procs
    kind, alpha = variant.split()
    alpha = float(alpha)
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and module.is_cross_attention:
            procs[f"{name}.processor"] = (
                LiteralEq15Processor(2.0, alpha) if kind == "literal" else pladis.PLADISAttnProcessor(2.0, alpha, backend=backend)
            )
    return procs


def forward(unet, inputs, device):
    with torch.no_grad():
        out = unet(**inputs).sample
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


class GraphedForward:
    """One variant's forward captured in a CUDA graph (after warm-up forwards on a side stream, which
    also compile and check the PLADIS kernels outside the capture); ``time(n)`` replays it ``n`` times
    between CUDA events and returns seconds per forward."""

    def __init__(self, unet, inputs) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):
                unet(**inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.out = unet(**inputs).sample
        torch.cuda.synchronize()

    def time(self, n: int = 3) -> float:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            self.graph.replay()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3 / n


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(args) -> None:
    """One forward of one variant in this fresh process; prints its peak RSS as JSON."""
    unet, inputs = build(args.arch, torch.device("cpu"), torch.float32)
    unet.set_attn_processor(processors(unet, args.child, args.backend))
    before = rss_mb()
    forward(unet, inputs, torch.device("cpu"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "above_mb": peak - before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=ARCHS, default=None, help="sd15 (CPU default) or sdxl (CUDA default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None, help="timed forwards per variant (3 CPU, 10 CUDA)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.25, 1.5, 1.75, 2.0])
    parser.add_argument("--literal-alphas", type=float, nargs="*", default=[1.5])
    parser.add_argument("--backend", default="auto", help="pladis back-end for the PLADIS variants")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--cuda-graph", action="store_true", help="time CUDA-graph replays of each forward (CUDA only)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    args.arch = args.arch or ("sdxl" if device.type == "cuda" else "sd15")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.child:
        return child(args)
    if args.cuda_graph and device.type != "cuda":
        parser.error("--cuda-graph needs --device cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    reps = args.reps or (10 if device.type == "cuda" else 3)
    variants = ["dense", *(f"pladis {a}" for a in args.alphas), *(f"literal {a}" for a in args.literal_alphas)]
    unet, inputs = build(args.arch, device, dtype)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    mode = ", CUDA-graph replays" if args.cuda_graph else ""
    print(f"# {args.arch} UNet forward, batch 2, {dtype}, {label}, torch {torch.__version__}, "
          f"backend={args.backend}, median of {reps}{mode}")
    first, times, memory = {}, {v: [] for v in variants}, {}
    for variant in variants:  # first forwards: compile / autotune / caches, timed apart
        unet.set_attn_processor(processors(unet, variant, args.backend))
        begin = time.perf_counter()
        forward(unet, inputs, device)
        first[variant] = time.perf_counter() - begin
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            forward(unet, inputs, device)
            peak = torch.cuda.max_memory_allocated(device)
            memory[variant] = (peak / 2**20, (peak - base) / 2**20)
    graphs = {}
    if args.cuda_graph:
        for variant in variants:
            unet.set_attn_processor(processors(unet, variant, args.backend))
            graphs[variant] = GraphedForward(unet, inputs)
        check = torch.zeros_like(graphs["dense"].out)
        for variant in variants:  # a replay recomputes what was captured: same output as an eager forward
            unet.set_attn_processor(processors(unet, variant, args.backend))
            graphs[variant].graph.replay()
            check.copy_(graphs[variant].out)
            eager = forward(unet, inputs, device)
            err = (check.float() - eager.float()).abs().max().item()
            print(f"# {variant}: max |replay − eager forward| = {err:.1e}")
    for rep in range(reps):  # interleaved rounds, the order reversed every other round (no position bias)
        for variant in variants if rep % 2 == 0 else variants[::-1]:
            if graphs:
                times[variant].append(graphs[variant].time())
                continue
            unet.set_attn_processor(processors(unet, variant, args.backend))
            begin = time.perf_counter()
            forward(unet, inputs, device)
            times[variant].append(time.perf_counter() - begin)
    if device.type == "cpu" and not args.no_memory:
        del unet
        for variant in variants:
            cmd = [sys.executable, __file__, "--child", variant, "--arch", args.arch, "--backend", args.backend]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            result = json.loads(out)
            memory[variant] = (result["peak_mb"], result["above_mb"])
    dense = statistics.median(times["dense"])
    print(f"{'variant':14s} {'step s':>8s} {'× dense':>8s} {'paired ×':>9s} {'range':>13s} {'1st fwd s':>10s} "
          f"{'peak MiB':>10s} {'× dense':>8s} {'above MiB':>10s} {'× dense':>8s}")
    for variant in variants:
        med = statistics.median(times[variant])
        # each round's time over the same round's dense time: robust to a machine whose speed drifts
        paired = [t / d for t, d in zip(times[variant], times["dense"], strict=True)]
        peak, above = memory.get(variant, (math.nan, math.nan))
        d_peak, d_above = memory.get("dense", (math.nan, math.nan))
        spread = f"{min(paired):.3f}–{max(paired):.3f}"
        print(f"{variant:14s} {med:8.3f} {med / dense:8.3f} {statistics.median(paired):9.3f} {spread:>13s} "
              f"{first[variant]:10.2f} {peak:10.0f} {peak / d_peak:8.3f} "
              f"{above:10.0f} {above / d_above if d_above else math.nan:8.3f}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    main()
