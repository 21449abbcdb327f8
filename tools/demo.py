"""The README's main job on its embedded default: a tiny SDXL-architecture pipeline, PLADIS off vs on.

Builds the tiny random-weight SDXL pipeline of the `sdxl` adapter (real diffusers/transformers
classes), generates the same prompt with the same seed without and with PLADIS (λ = 2, α = 1.5),
and writes both images, a side-by-side strip and ``timings.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import pladis
from pladis_adapter_sdxl import tiny_pipeline


def _generate(pipe, prompt: str, seed: int, steps: int, size: int) -> tuple[np.ndarray, float]:
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    image = pipe(prompt, num_inference_steps=steps, height=size, width=size, generator=generator,
                 output_type="np").images[0]
    return image, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--prompt", default="a red circle left of a blue square")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=1.5)
    args = parser.parse_args(argv)

    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    _generate(pipe, args.prompt, args.seed, 1, args.size)  # warm-up, both paths
    with pladis.enabled(pipe, scale=args.scale, alpha=args.alpha):
        _generate(pipe, args.prompt, args.seed, 1, args.size)
    baseline, t_base = _generate(pipe, args.prompt, args.seed, args.steps, args.size)
    with pladis.enabled(pipe, scale=args.scale, alpha=args.alpha) as handle:
        boosted, t_pladis = _generate(pipe, args.prompt, args.seed, args.steps, args.size)
        layers = len(handle.layer_names)

    args.out.mkdir(parents=True, exist_ok=True)
    to_pil = lambda a: Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))  # noqa: E731
    to_pil(baseline).save(args.out / "baseline.png")
    to_pil(boosted).save(args.out / "pladis.png")
    to_pil(np.concatenate([baseline, boosted], axis=1)).save(args.out / "compare.png")
    report = {
        "prompt": args.prompt,
        "seed": args.seed,
        "steps": args.steps,
        "size": args.size,
        "scale": args.scale,
        "alpha": args.alpha,
        "pladis_layers": layers,
        "seconds_baseline": round(t_base, 4),
        "seconds_pladis": round(t_pladis, 4),
        "mean_abs_pixel_difference": float(np.abs(baseline - boosted).mean()),
    }
    (args.out / "timings.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}/baseline.png, pladis.png, compare.png, timings.json")
    return report


if __name__ == "__main__":
    main()
