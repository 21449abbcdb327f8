"""Cost of PLADIS on cross-attention transformers: one denoiser step of the real Wan 2.1 T2V 1.3B and
PixArt-Σ 1024 transformer architectures, random weights, fp32, dense vs PLADIS.

Times are process CPU seconds (``--wall``: the wall clock). Configurations are written out below (the models' published configs). Wan: a clip of ``--frames`` frames at
``--height``×``--width`` (latents 16 × (1 + (F−1)/4) × H/8 × W/8, patch 1×2×2), batch 1 (the Wan pipelines
call the transformer once per CFG branch), 512 zero-padded text tokens; PLADIS through ``pladis.apply``
with the ``wan`` adapter (SDPA interception in ``WanAttnProcessor``). PixArt-Σ: ``--pixart-side`` px
(latents side/8, patch 2), batch 2 (CFG), 300 T5 tokens of which 20 unmasked; PLADIS through the
``pixart`` adapter (``PLADISAttnProcessor`` on every ``attn2``). Step times are medians of interleaved
repetitions (order reversed every other round) and 'paired ×' the median of PLADIS ÷ dense within a round;
peak memory is the peak RSS of a fresh process running one step (its high-water mark reset after the model is
built; total, and above the RSS before the step).

    .venv/bin/python tools/bench_video.py --threads 2 --frames 9 --height 480 --width 832
    .venv/bin/python tools/bench_video.py --only wan --layers 30 --frames 9 --height 240 --width 416
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time

import torch

import pladis

WAN_1_3B = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=1024,
)
PIXART_SIGMA_1024 = dict(
    num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
    cross_attention_dim=1152, attention_bias=True, sample_size=128, patch_size=2, activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000, upcast_attention=False, norm_type="ada_norm_single", norm_elementwise_affine=False,
    norm_eps=1e-6, caption_channels=4096, interpolation_scale=2, use_additional_conditions=False,
)
BACKBONE = {"wan": "wan", "pixart": "pixart"}
WALL_CLOCK = False


def build(arch: str, args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """The random-weight transformer and the keyword arguments of one denoiser step."""
    from diffusers import PixArtTransformer2DModel, WanTransformer3DModel

    torch.manual_seed(0)
    if arch == "wan":
        config = dict(WAN_1_3B, num_layers=args.layers or WAN_1_3B["num_layers"])
        model = WanTransformer3DModel(**config).eval()
        frames = 1 + (args.frames - 1) // 4
        text = torch.randn(1, 512, 4096)
        text[:, 24:] = 0.0  # the pipelines zero-pad the prompt to 512 tokens
        inputs = dict(hidden_states=torch.randn(1, 16, frames, args.height // 8, args.width // 8),
                      timestep=torch.tensor([999.0]), encoder_hidden_states=text, return_dict=False)
    else:
        config = dict(PIXART_SIGMA_1024, num_layers=args.layers or PIXART_SIGMA_1024["num_layers"])
        model = PixArtTransformer2DModel(**config).eval()
        side = args.pixart_side // 8
        mask = torch.zeros(2, 300)
        mask[:, :20] = 1.0
        inputs = dict(hidden_states=torch.randn(2, 4, side, side), encoder_hidden_states=torch.randn(2, 300, 4096),
                      timestep=torch.tensor([999, 999]), encoder_attention_mask=mask,
                      added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)
    return model, inputs


def step(model: torch.nn.Module, inputs: dict) -> float:
    """Seconds of one denoiser call: process CPU time (all threads; with one thread, the wall time less
    what other processes took), or the wall clock under ``--wall``."""
    clock = time.perf_counter if WALL_CLOCK else time.process_time
    start = clock()
    with torch.no_grad():
        model(**inputs)
    return clock() - start


def set_variant(model: torch.nn.Module, arch: str, variant: str, backend: str) -> None:
    pladis.remove(model)
    if variant == "pladis":
        pladis.apply(model, scale=2.0, alpha=1.5, backbone=BACKBONE[arch], backend=backend)


def peak_memory(arch: str, variant: str, args: argparse.Namespace) -> dict:
    """Peak RSS (MiB) of a fresh process running one step of ``variant``."""
    command = [sys.executable, __file__, "--memory-child", arch, variant, *sys.argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(arch: str, variant: str, args: argparse.Namespace) -> None:
    """Peak RSS of one step: Linux's high-water mark reset after the model is built (``clear_refs`` 5)."""
    model, inputs = build(arch, args)
    set_variant(model, arch, variant, args.backend)
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    before = _status_mib("VmRSS")
    step(model, inputs)
    peak = _status_mib("VmHWM")
    print(json.dumps({"peak_mib": round(peak), "step_mib": round(peak - before)}))


def bench(arch: str, args: argparse.Namespace) -> dict:
    model, inputs = build(arch, args)
    for variant in ("dense", "pladis"):  # warm-up (the native kernel builds on first use)
        set_variant(model, arch, variant, args.backend)
        step(model, inputs)
    times: dict[str, list[float]] = {"dense": [], "pladis": []}
    ratios = []
    for round_ in range(args.repeats):
        order = ("dense", "pladis") if round_ % 2 == 0 else ("pladis", "dense")
        measured = {}
        for variant in order:
            set_variant(model, arch, variant, args.backend)
            measured[variant] = step(model, inputs)
            times[variant].append(measured[variant])
        ratios.append(measured["pladis"] / measured["dense"])
    pladis.remove(model)
    del model
    memory = {variant: peak_memory(arch, variant, args) for variant in ("dense", "pladis")}
    return {"times": {k: statistics.median(v) for k, v in times.items()}, "paired": statistics.median(ratios),
            "memory": memory}


def describe(arch: str, args: argparse.Namespace) -> str:
    if arch == "wan":
        return (f"Wan 2.1 1.3B ({args.layers or 30} blocks), {args.frames} frames {args.height}x{args.width}, "
                f"batch 1, 512 text tokens")
    return f"PixArt-Sigma ({args.layers or 28} blocks), {args.pixart_side}^2, batch 2, 300 T5 tokens (20 unmasked)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("wan", "pixart"), help="run one architecture (default: both)")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--pixart-side", type=int, default=1024)
    parser.add_argument("--layers", type=int, help="blocks (default: the model's own: Wan 30, PixArt 28)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--wall", action="store_true", help="time by the wall clock (default: process CPU time)")
    parser.add_argument("--memory-child", nargs=2, metavar=("ARCH", "VARIANT"), help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    global WALL_CLOCK
    WALL_CLOCK = args.wall
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU, λ=2 α=1.5, backend {args.backend}, "
          f"{'wall' if args.wall else 'process CPU'} seconds")
    print(f"{'model':<78} {'dense s':>8} {'PLADIS s':>9} {'paired ×':>9} {'peak MiB':>15} {'peak ×':>7} {'step MiB':>13}")
    for arch in ("wan", "pixart") if args.only is None else (args.only,):
        result = bench(arch, args)
        dense, boosted = result["memory"]["dense"], result["memory"]["pladis"]
        print(f"{describe(arch, args):<78} {result['times']['dense']:>8.2f} {result['times']['pladis']:>9.2f} "
              f"{result['paired']:>9.3f} {dense['peak_mib']:>7}/{boosted['peak_mib']:<7} "
              f"{boosted['peak_mib'] / dense['peak_mib']:>7.3f} {dense['step_mib']:>6}/{boosted['step_mib']:<6}",
              flush=True)


if __name__ == "__main__":
    main()
