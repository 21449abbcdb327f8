"""Text-alignment benchmark of PLADIS on the toy model (a miniature of the paper's Figure 7 / Table 5).

    .venv/bin/python tools/toy/bench.py                      # full run (README numbers)
    .venv/bin/python tools/toy/bench.py --smoke              # 2 prompts, 1 seed, 1 step

The full run can be split over processes (``--guidance cfg+pag --json a.json`` ...) and merged with
``--load a.json b.json --table ... --plot ...``.

Held-out prompts (:func:`prompts`: never seen in training, see ``toy/data.py``) x ``--seeds`` seeds, under
no guidance, CFG, CFG+PAG and CFG+SEG, without PLADIS and with PLADIS for every lambda x alpha in the grid.
lambda = 0 is the baseline itself (Eq. 15 at lambda 0 is the softmax attention), so it is generated once.
Each image gets the scorer's ``overall`` alignment (``toy/scorer.py``); the table gives the mean over
images with a 95 % normal-approximation confidence interval (1.96 standard errors) and, for PLADIS, the
paired difference to the baseline of the same guidance (same prompts, same initial noise) with its own
95 % interval.  Writes the table (markdown) to stdout and ``--table``, the numbers to ``--json`` and the
plot to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toy import data, scorer  # noqa: E402

GUIDANCE = {"none": {"guidance_scale": 1.0}, "cfg": {"guidance_scale": 5.0},
            "cfg+pag": {"guidance_scale": 5.0, "pag_scale": 3.0},
            "cfg+seg": {"guidance_scale": 5.0, "seg_scale": 3.0}}
SCALES = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0)
ALPHAS = (1.5, 2.0)


def prompts(n_per_pair: int = 3) -> list[str]:
    """The benchmark's held-out prompt set: the 6 held-out count prompts, and for each of the 8 held-out
    object pairs one "and" prompt and ``n_per_pair - 1`` relation prompts (order and relation drawn from
    a seeded generator)."""
    rng = np.random.default_rng(7)
    held = data.held_out_specs()
    out = sorted(data.prompt_of(s) for s in held if s.kind == "count")
    for pair in sorted(data.HELD_OUT_PAIRS, key=sorted):
        both = [s for s in held if len(s.objects) == 2 and frozenset(s.objects) == pair]
        binding = sorted((s for s in both if s.kind == "binding"), key=data.prompt_of)
        relation = sorted((s for s in both if s.kind == "relation"), key=data.prompt_of)
        out.append(data.prompt_of(binding[int(rng.integers(len(binding)))]))
        for i in rng.permutation(len(relation))[: n_per_pair - 1]:
            out.append(data.prompt_of(relation[int(i)]))
    return out


def load(model: str):
    from diffusers import StableDiffusionPAGPipeline, StableDiffusionPipeline

    from pladis.guidance import StableDiffusionSEGPipeline

    base = StableDiffusionPipeline.from_pretrained(model)
    pipes = {"base": base, "pag": StableDiffusionPAGPipeline.from_pipe(base, pag_applied_layers="mid"),
             "seg": StableDiffusionSEGPipeline.from_pipe(base, seg_applied_layers="mid")}
    for p in pipes.values():
        p.set_progress_bar_config(disable=True)
    return pipes


def generate(pipes, guidance: str, prompt_list: list[str], seeds: int, steps: int, chunk: int) -> np.ndarray:
    """uint8 images, ordered (seed, prompt)."""
    kind = "pag" if "pag" in guidance else "seg" if "seg" in guidance else "base"
    jobs = [(p, s) for s in range(seeds) for p in prompt_list]
    out = []
    for i in range(0, len(jobs), chunk):
        part = jobs[i:i + chunk]
        images = pipes[kind]([p for p, _ in part], num_inference_steps=steps, output_type="np",
                             generator=[torch.Generator().manual_seed(s) for _, s in part],
                             **GUIDANCE[guidance]).images
        out.append((np.asarray(images) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, float)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), float(half)


def run(model: str, prompt_list: list[str], seeds: int, steps: int, guidances, scales, alphas,
        chunk: int = 64, log=print) -> dict:
    import pladis

    pipes = load(model)
    jobs = [(p, s) for s in range(seeds) for p in prompt_list]
    results = {"prompts": prompt_list, "seeds": seeds, "steps": steps, "guidance": {g: GUIDANCE[g] for g in
               guidances}, "cells": []}
    for g in guidances:
        settings = [(0.0, None)] + [(lam, a) for a in alphas for lam in scales if lam != 0.0]
        for lam, a in settings:
            t0 = time.time()
            if a is None:
                pladis.remove(pipes["base"])
            else:
                pladis.apply(pipes["base"], scale=lam, alpha=a)
            images = generate(pipes, g, prompt_list, seeds, steps, chunk)
            pladis.remove(pipes["base"])
            scores = [scorer.score(im, p) for im, (p, _) in zip(images, jobs, strict=True)]
            cell = {"guidance": g, "scale": lam, "alpha": a,
                    "overall": [s["overall"] for s in scores], "all": [s["all"] for s in scores],
                    **{k: float(np.mean([s[k] for s in scores if k in s]))
                       for k in ("presence", "binding", "count", "relation") if any(k in s for s in scores)}}
            results["cells"].append(cell)
            log(f"{g:8s} lambda={lam:<4} alpha={a} overall={np.mean(cell['overall']):.3f} "
                f"({time.time() - t0:.1f} s)")
    return results


def table(results: dict) -> str:
    cells = results["cells"]
    guid = list(dict.fromkeys(c["guidance"] for c in cells))
    alphas = sorted({c["alpha"] for c in cells if c["alpha"] is not None})
    scales = sorted({c["scale"] for c in cells})
    n = len(cells[0]["overall"])
    lines = [f"Mean alignment (%, scorer `overall`) +- 95 % CI over {n} images "
             f"({len(results['prompts'])} held-out prompts x {results['seeds']} seeds, {results['steps']} DDIM steps); "
             "in brackets: paired difference to the baseline (lambda = 0), +- 95 % CI.", "",
             "| guidance | alpha | " + " | ".join(f"lambda={s:g}" + (" (baseline)" if s == 0 else "")
                                               for s in scales) + " |",
             "|---|---|" + "---|" * len(scales)]
    for g in guid:
        base = next(c for c in cells if c["guidance"] == g and c["alpha"] is None)
        for a in alphas:
            row = []
            for s in scales:
                c = base if s == 0 else next(c for c in cells if c["guidance"] == g and c["alpha"] == a
                                             and c["scale"] == s)
                m, h = mean_ci(np.array(c["overall"]) * 100)
                txt = f"{m:.1f} ± {h:.1f}"
                if s != 0:
                    dm, dh = mean_ci((np.array(c["overall"]) - np.array(base["overall"])) * 100)
                    txt += f" [{dm:+.1f} ± {dh:.1f}]"
                row.append(txt)
            lines.append(f"| {g} | {a:g} | " + " | ".join(row) + " |")
    lines += ["", "Per-check means (%) of the baseline and of the paper's default (lambda 2, alpha 1.5):", "",
              "| guidance | setting | presence | binding | count | relation | all checks |", "|---|---|---|---|---|---|---|"]
    for g in guid:
        for c in cells:
            if c["guidance"] == g and (c["alpha"] is None or (c["alpha"] == 1.5 and c["scale"] == 2.0)):
                name = "baseline" if c["alpha"] is None else "PLADIS λ2 α1.5"
                vals = [c.get(k, float("nan")) * 100 for k in ("presence", "binding", "count", "relation")]
                lines.append(f"| {g} | {name} | " + " | ".join(f"{v:.1f}" for v in vals)
                             + f" | {np.mean(c['all']) * 100:.1f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """One panel per guidance: alignment vs lambda for each alpha (solid 1.5, dashed 2), 95 % CI bars."""
    from PIL import Image, ImageDraw

    cells = results["cells"]
    guid = list(dict.fromkeys(c["guidance"] for c in cells))
    alphas = sorted({c["alpha"] for c in cells if c["alpha"] is not None})
    stats = {(c["guidance"], c["alpha"], c["scale"]): mean_ci(np.array(c["overall"]) * 100) for c in cells}
    lo = max(0.0, np.floor(min(m - np.nan_to_num(h) for m, h in stats.values()) / 10) * 10)
    hi = min(100.0, np.ceil(max(m + np.nan_to_num(h) for m, h in stats.values()) / 10) * 10)
    hi = hi if hi > lo else lo + 10
    xmax = max(c["scale"] for c in cells) or 1.0
    PW, PH, L, T, B = 420, 300, 55, 30, 40
    cols = 2 if len(guid) > 1 else 1
    rows = -(-len(guid) // cols)
    img = Image.new("RGB", (cols * PW + 20, rows * PH + 50), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 8), f"Toy model: mean alignment on held-out prompts vs PLADIS lambda (95% CI); "
           f"{len(cells[0]['overall'])} images per point; solid alpha=1.5, dashed alpha=2", fill="black")
    palette = [(31, 119, 180), (214, 39, 40), (44, 160, 44)]
    for i, g in enumerate(guid):
        ox, oy = 10 + (i % cols) * PW, 30 + (i // cols) * PH
        x0, x1, y0, y1 = ox + L, ox + PW - 20, oy + T, oy + PH - B

        def xy(lam, m, x0=x0, x1=x1, y0=y0, y1=y1):
            return x0 + lam / xmax * (x1 - x0), y0 + (hi - min(max(m, lo), hi)) / (hi - lo) * (y1 - y0)
        d.rectangle([x0, y0, x1, y1], outline="black")
        d.text((x0 + 5, y0 - 16), f"guidance: {g}", fill="black")
        for k in np.arange(lo, hi + 0.1, 10):
            d.line([x0 - 4, xy(0, k)[1], x0, xy(0, k)[1]], fill="black")
            d.text((x0 - 35, xy(0, k)[1] - 6), f"{k:.0f}%", fill="black")
        for lam in sorted({c["scale"] for c in cells}):
            d.line([xy(lam, lo)[0], y1, xy(lam, lo)[0], y1 + 4], fill="black")
            d.text((xy(lam, lo)[0] - 8, y1 + 7), f"{lam:g}", fill="black")
        d.text(((x0 + x1) / 2 - 20, y1 + 22), "lambda", fill="black")
        bm, _ = stats[(g, None, 0.0)]
        d.line([x0, xy(0, bm)[1], x1, xy(0, bm)[1]], fill=(180, 180, 180))
        for j, a in enumerate(alphas):
            col = palette[j % len(palette)]
            pts = [(0.0, *stats[(g, None, 0.0)])] + sorted(
                (lam, *stats[(g, a, lam)]) for (gg, aa, lam) in stats if gg == g and aa == a)
            xs = [xy(lam + (j - 0.5) * 0.03 * xmax, m) for lam, m, _ in pts]
            for p0, p1 in zip(xs, xs[1:], strict=False):
                steps = 1 if j == 0 else 6
                for f in np.arange(steps) / steps:
                    g1 = f + (1 if j == 0 else 0.5) / steps
                    d.line([p0[0] + (p1[0] - p0[0]) * f, p0[1] + (p1[1] - p0[1]) * f,
                            p0[0] + (p1[0] - p0[0]) * g1, p0[1] + (p1[1] - p0[1]) * g1], fill=col, width=2)
            for (_, m, h), (x, y) in zip(pts, xs, strict=True):
                if np.isfinite(h):
                    d.line([x, xy(0, m + h)[1], x, xy(0, m - h)[1]], fill=col)
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=col)
            d.text((x1 - 80, y0 + 6 + 14 * j), f"alpha={a:g}", fill=col)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def samples(model: str, prompt_list: list[str], path: Path, steps: int = 20, scale: float = 2.0,
            alpha: float = 1.5, seed: int = 0, zoom: int = 6) -> None:
    """A captioned grid: each prompt under CFG, PLADIS off (left) and on (right), same seed, upscaled."""
    from PIL import Image, ImageDraw

    import pladis

    pipe = load(model)["base"]
    images = {}
    for on in (False, True):
        if on:
            pladis.apply(pipe, scale=scale, alpha=alpha)
        out = pipe(prompt_list, num_inference_steps=steps, output_type="np", **GUIDANCE["cfg"],
                   generator=[torch.Generator().manual_seed(seed) for _ in prompt_list]).images
        pladis.remove(pipe)
        images[on] = (np.asarray(out) * 255).round().astype(np.uint8)
    side, text_w = data.SIZE * zoom, 330
    grid = Image.new("RGB", (text_w + 2 * side + 30, 24 + len(prompt_list) * (side + 6)), "white")
    d = ImageDraw.Draw(grid)
    d.text((text_w, 4), "PLADIS off", fill="black")
    d.text((text_w + side + 10, 4), f"on (lambda {scale:g}, alpha {alpha:g})", fill="black")
    for i, prompt in enumerate(prompt_list):
        y = 24 + i * (side + 6)
        d.text((6, y + side // 2 - 6), prompt, fill="black")
        for j, on in enumerate((False, True)):
            grid.paste(Image.fromarray(images[on][i]).resize((side, side), Image.NEAREST),
                       (text_w + j * (side + 10), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/toy")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=None, help="use only the first N prompts")
    ap.add_argument("--guidance", nargs="+", default=list(GUIDANCE), choices=list(GUIDANCE))
    ap.add_argument("--scales", nargs="+", type=float, default=list(SCALES))
    ap.add_argument("--alphas", nargs="+", type=float, default=list(ALPHAS))
    ap.add_argument("--chunk", type=int, default=64, help="images per pipeline call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="2 prompts, 1 seed, 1 step")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--samples", type=Path, default=None,
                    help="also write a PLADIS off/on grid (CFG, seed 0) of every third prompt here")
    ap.add_argument("--load", type=Path, nargs="+", default=None,
                    help="merge earlier --json results (e.g. one run per guidance) instead of generating")
    args = ap.parse_args(argv)
    if args.smoke:
        args.prompts, args.seeds, args.steps = 2, 1, 1
    torch.set_num_threads(args.threads)
    plist = prompts()[: args.prompts]
    if args.load:
        parts = [json.loads(f.read_text()) for f in args.load]
        results = {**parts[0], "guidance": {g: v for r in parts for g, v in r["guidance"].items()},
                   "cells": [c for r in parts for c in r["cells"]]}
    else:
        results = run(args.model, plist, args.seeds, args.steps, args.guidance, args.scales, args.alphas,
                      args.chunk)
    text = table(results)
    print(text)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(text + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results))
    if args.plot:
        plot(results, args.plot)
    if args.samples:
        samples(args.model, plist[::3][:10], args.samples, steps=args.steps)
    return results


if __name__ == "__main__":
    main()
