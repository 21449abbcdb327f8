"""Joint-attention PLADIS vs dense, side by side in one run: one denoiser step of the real FLUX.1 and
SD3.5-Medium transformer architectures at full width (random weights, reduced depth), and one joint-attention
call alone vs SDPA at the same shapes. fp32 CPU, batch 1, 1024² (4096 image tokens; 512 / 333 text tokens).

    .venv/bin/python tools/bench_joint.py [--threads 2] [--repeats 2] [--flux-depth 1,1] [--sd3-depth 2]

Times are process CPU time (with one thread, wall time minus what other processes took). Step times:
dense and PLADIS in turn on one model (apply / remove between), best of ``--repeats`` after a
warm-up round. Memory: each mode's step in its own subprocess, so that its peak resident memory
(``ru_maxrss``) is its own; the table gives the peak and the step's rise over the peak before the step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _flux(depth: tuple[int, int]):
    import torch
    from diffusers import FluxTransformer2DModel

    double, single = depth
    model = FluxTransformer2DModel(num_layers=double, num_single_layers=single, guidance_embeds=True).eval()
    gen = torch.Generator().manual_seed(0)
    n_img, n_txt = 4096, 512
    inputs = dict(
        hidden_states=torch.randn(1, n_img, 64, generator=gen), encoder_hidden_states=torch.randn(1, n_txt, 4096, generator=gen),
        pooled_projections=torch.randn(1, 768, generator=gen), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
        img_ids=torch.randn(n_img, 3, generator=gen), txt_ids=torch.zeros(n_txt, 3), return_dict=False,
    )
    return model, inputs, "flux"


def _sd3(depth: int):
    import torch
    from diffusers import SD3Transformer2DModel

    model = SD3Transformer2DModel(  # SD3.5-Medium's config, fewer layers
        sample_size=128, patch_size=2, in_channels=16, num_layers=depth, attention_head_dim=64, num_attention_heads=24,
        joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
        pos_embed_max_size=384, dual_attention_layers=tuple(range(min(depth, 13))), qk_norm="rms_norm",
    ).eval()
    gen = torch.Generator().manual_seed(0)
    inputs = dict(
        hidden_states=torch.randn(1, 16, 128, 128, generator=gen), encoder_hidden_states=torch.randn(1, 333, 4096, generator=gen),
        pooled_projections=torch.randn(1, 2048, generator=gen), timestep=torch.tensor([500.0]), return_dict=False,
    )
    return model, inputs, "sd3"


def _build(family: str, depth: str):
    return _flux(tuple(map(int, depth.split(",")))) if family == "flux" else _sd3(int(depth))


def step_memory(family: str, mode: str, depth: str, threads: int) -> dict:
    """Peak resident memory of one denoiser step in this (fresh) process, and its rise over the start."""
    import torch

    import pladis

    torch.set_num_threads(threads)
    with torch.no_grad():
        model, inputs, backbone = _build(family, depth)
        if mode == "pladis":
            pladis.apply(model, backbone=backbone)
        before = _peak_mib()
        model(**inputs)
    return {"peak_mib": _peak_mib(), "step_mib": _peak_mib() - before}


def step_times(family: str, depth: str, repeats: int, threads: int) -> dict:
    """Best-of-``repeats`` step times, dense and PLADIS in turn on one model (apply / remove between)."""
    import torch

    import pladis

    torch.set_num_threads(threads)
    times = {"dense": [], "pladis": []}
    with torch.no_grad():
        model, inputs, backbone = _build(family, depth)
        for i in range(repeats + 1):  # the first round warms up (and builds / loads the native kernel)
            for mode in ("dense", "pladis"):
                handle = pladis.apply(model, backbone=backbone) if mode == "pladis" else None
                t0 = time.process_time()  # CPU time: other processes on a shared machine do not count
                model(**inputs)
                if i:
                    times[mode].append(time.process_time() - t0)
                if handle is not None:
                    handle.remove()
    return {mode: min(values) for mode, values in times.items()}


def attention_alone(repeats: int, threads: int) -> list[dict]:
    """One joint-attention call (FLUX: 24 heads x 128, 4608 tokens, 512 text; SD3.5: 24 x 64, 4429, 333)."""
    import torch
    import torch.nn.functional as F

    from pladis.joint import joint_attention

    torch.set_num_threads(threads)
    rows = []
    for name, heads, dim, n_txt, order in (("FLUX.1", 24, 128, 512, "text_first"), ("SD3.5-M", 24, 64, 333, "image_first")):
        n = 4096 + n_txt
        gen = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, heads, n, dim, generator=gen) for _ in range(3))
        text = (0, n_txt) if order == "text_first" else (4096, n)
        joint_attention(q, k, v, text=text)  # warm-up
        sdpa, ours = [], []
        for _ in range(repeats):  # in turn; CPU time, so that other processes on the machine do not count
            t0 = time.process_time()
            F.scaled_dot_product_attention(q, k, v)
            sdpa.append(time.process_time() - t0)
            t0 = time.process_time()
            joint_attention(q, k, v, text=text)
            ours.append(time.process_time() - t0)
        rows.append({"shape": f"{name}: 1x{heads}x{n}x{dim}, text {n_txt}", "sdpa_s": min(sdpa), "pladis_s": min(ours)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--flux-depth", default="1,1", help="double,single blocks (FLUX.1 has 19,38)")
    parser.add_argument("--sd3-depth", default="2", help="MMDiT blocks (SD3.5-Medium has 24)")
    parser.add_argument("--memory", nargs=2, metavar=("FAMILY", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-steps", action="store_true", help="only the attention calls")
    parser.add_argument("--no-memory", action="store_true", help="step times only (no memory subprocesses)")
    args = parser.parse_args()
    if args.memory:
        family, mode = args.memory
        depth = args.flux_depth if family == "flux" else args.sd3_depth
        print(json.dumps(step_memory(family, mode, depth, args.threads)))
        return

    print(f"fp32 CPU, {args.threads} threads, batch 1, 1024², best of {args.repeats} after a warm-up, "
          "times in process CPU seconds\n")
    print("| joint-attention call | SDPA (s) | PLADIS (s) | × SDPA |\n|---|---|---|---|")
    for row in attention_alone(args.repeats + 1, args.threads):
        print(f"| {row['shape']} | {row['sdpa_s']:.3f} | {row['pladis_s']:.3f} | {row['pladis_s'] / row['sdpa_s']:.2f} |")
    if args.skip_steps:
        return
    print("\n| denoiser step | dense (s) | PLADIS (s) | × dense | peak MiB dense / PLADIS | × | step MiB dense / PLADIS |")
    print("|---|---|---|---|---|---|---|")
    for family, label in (("flux", f"FLUX.1 (full width, {args.flux_depth} double,single blocks)"),
                          ("sd3", f"SD3.5-Medium (full width, {args.sd3_depth} blocks)")):
        depth = args.flux_depth if family == "flux" else args.sd3_depth
        result = {mode: {"peak_mib": float("nan"), "step_mib": float("nan")} for mode in ("dense", "pladis")}
        for mode in () if args.no_memory else ("dense", "pladis"):
            command = [sys.executable, __file__, "--memory", family, mode, "--threads", str(args.threads),
                       "--flux-depth", args.flux_depth, "--sd3-depth", args.sd3_depth]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result[mode] = json.loads(out.strip().splitlines()[-1])
        times = step_times(family, depth, args.repeats, args.threads)
        d, p = result["dense"], result["pladis"]
        print(f"| {label} | {times['dense']:.2f} | {times['pladis']:.2f} | {times['pladis'] / times['dense']:.3f} | "
              f"{d['peak_mib']:.0f} / {p['peak_mib']:.0f} | {p['peak_mib'] / d['peak_mib']:.3f} | "
              f"{d['step_mib']:.0f} / {p['step_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
