"""Time the exported dense and PLADIS (Eq. 15) denoisers in ONNX Runtime, in one run, and print the ratio.

    .venv/bin/python tools/bench_onnx.py [--arch sd15 sdxl-reduced sdxl] [--provider auto|cpu|cuda]
                                         [--alpha 1.5] [--repeats 3] [--latent 64]

Architectures (random weights, batch 2 = one CFG step, fp32):

* ``sd15``: the SD 1.5 UNet config (320/640/1280/1280, 8 heads, cross-attention dim 768, 77 tokens).
* ``sdxl``: the SDXL base UNet config (320/640/1280, transformer depth 1/2/10, 2048-d text, text_time).
  Needs ~30 GB of RAM for the two fp32 sessions plus export.
* ``sdxl-reduced``: the SDXL config with transformer depth 1/2/2 instead of 1/2/10 (fits in ~16 GB).

The latent side defaults to 64 (512 px for SD1.5; SDXL's native side is 128). λ = 2 is fed as the
``pladis_scale`` input of the PLADIS graph; timings are the median of ``--repeats`` calls after a warm-up,
dense and PLADIS interleaved so that machine drift hits both alike.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SD15 = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)
SDXL = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
CONFIGS: dict[str, dict[str, Any]] = {
    "sd15": SD15,
    "sdxl": SDXL,
    "sdxl-reduced": {**SDXL, "transformer_layers_per_block": (1, 2, 2)},
}


def feeds(session: Any, latent: int, width: int, pooled: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {
        "sample": rng.standard_normal((2, 4, latent, latent), dtype=np.float32),
        "timestep": np.full((2,), 500.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 77, width), dtype=np.float32),
        "text_embeds": rng.standard_normal((2, pooled), dtype=np.float32),
        "time_ids": np.tile(np.array([[1024, 1024, 0, 0, 1024, 1024]], dtype=np.float32), (2, 1)),
        "pladis_scale": np.array([2.0], dtype=np.float32),
    }
    return {i.name: data[i.name] for i in session.get_inputs()}


def bench(arch: str, providers: list[str], alpha: float, repeats: int, latent: int, workdir: Path) -> None:
    import onnxruntime as ort
    from diffusers import UNet2DConditionModel

    from pladis_onnx import export_denoiser

    config = CONFIGS[arch]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    paths = {}
    for name, pladis in (("dense", False), ("pladis", True)):
        start = time.perf_counter()
        paths[name] = export_denoiser(unet, workdir / arch / name / "denoiser.onnx", pladis=pladis, alpha=alpha,
                                      style="sd", sample_size=8)
        print(f"[{arch}] exported {name} in {time.perf_counter() - start:.0f}s", flush=True)
    del unet
    gc.collect()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = {n: ort.InferenceSession(str(p), options, providers=providers) for n, p in paths.items()}
    kind_feeds = {n: feeds(s, latent, config["cross_attention_dim"],
                           config.get("projection_class_embeddings_input_dim", 0) - 6 * config.get(
                               "addition_time_embed_dim", 0)) for n, s in sessions.items()}
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for n, s in sessions.items():  # warm-up
        s.run(None, kind_feeds[n])
    for _ in range(repeats):
        for n, s in sessions.items():
            start = time.perf_counter()
            s.run(None, kind_feeds[n])
            times[n].append(time.perf_counter() - start)
    dense, sparse = statistics.median(times["dense"]), statistics.median(times["pladis"])
    provider = sessions["pladis"].get_providers()[0]
    print(f"[{arch}] {params:.0f}M params, batch 2, latent {latent}x{latent}, alpha={alpha}, {provider}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"[{arch}] dense  {dense * 1000:9.1f} ms/step  (runs: {[round(t * 1000) for t in times['dense']]})")
    print(f"[{arch}] PLADIS {sparse * 1000:9.1f} ms/step  (runs: {[round(t * 1000) for t in times['pladis']]})")
    print(f"[{arch}] ratio PLADIS/dense = {sparse / dense:.3f}  (target <= 1.10)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["sd15", "sdxl-reduced"], choices=sorted(CONFIGS))
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--alpha", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the exports here (default: temp dir)")
    args = parser.parse_args()
    from pladis_onnx import resolve_providers

    providers = resolve_providers(args.provider)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for arch in args.arch:
            bench(arch, providers, args.alpha, args.repeats, args.latent, workdir)


if __name__ == "__main__":
    main()
