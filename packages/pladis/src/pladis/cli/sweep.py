"""``pladis sweep``: a grid over λ (columns) and α (rows), like the paper's Figures 5, 18 and 19."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import _options
from ._grid import make_grid
from ._output import Run, stem
from ._session import load_session

HELP = "grid over λ values and α ∈ {1.5, 2}"
DESCRIPTION = """Generate every prompt with the same seed for each λ (columns) and α (rows) and write one
captioned grid per prompt, NN-<prompt>-sweep.png, with a JSON sidecar listing every cell's settings and
timing. λ = 0 (PLADIS off) is generated once and shown in every row. --save-cells also writes each cell.
Example: pladis sweep "a cat wearing a hat" --model DIR --scales 0,1,2,3 --alphas 1.5,2"""

ALPHA_NAMES = {1.5: "entmax15", 2.0: "sparsemax"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser, sweep=True)
    _options.add_output_options(parser, "outputs/sweep")
    parser.add_argument("--save-cells", action="store_true", help="also write every cell with its sidecar")
    parser.set_defaults(run=run)


def _row_label(alpha: float) -> str:
    name = ALPHA_NAMES.get(alpha)
    return f"alpha={alpha:g}" + (f" ({name})" if name else "")


def run(args: argparse.Namespace) -> int:
    prompts = _options.read_prompts(args)
    _options.check_window(args)
    session = load_session(args)
    settings, jobs = sweep_jobs(args)
    run_ = Run(args, "sweep", len(prompts) * len(jobs))

    results: dict[int, dict[tuple[float, float], tuple]] = {index: {} for index in range(len(prompts))}
    for alpha, scale in jobs:  # settings outer: PLADIS is applied once per (α, λ)
        session.apply(settings[alpha, scale])
        for index, prompt in enumerate(prompts):
            results[index][alpha, scale] = session.generate(prompt, args.seed, run_.progress)
    for index, prompt in enumerate(prompts):
        save_sweep(session, run_, args, prompt, index, settings, results[index], save_cells=args.save_cells)
    return run_.finish()


def sweep_jobs(args: argparse.Namespace) -> tuple[dict[tuple[float, float], Any], list[tuple[float, float]]]:
    """The settings of every (α, λ) cell, and the (α, λ) runs that make them: λ = 0 once, shared by
    every row, when it is asked for."""
    scales, alphas = args.scales, args.alphas
    settings = {(a, s): _options.pladis_settings(args, scale=s, alpha=a) for a in alphas for s in scales}
    jobs = [(alphas[0], 0.0)] if 0.0 in scales else []
    jobs += [(a, s) for a in alphas for s in scales if s != 0.0]
    return settings, jobs


def save_sweep(session: Any, run_: Run, args: argparse.Namespace, prompt: str, index: int,
               settings: dict[tuple[float, float], Any], results: dict[tuple[float, float], tuple], *,
               save_cells: bool = False, **sidecar: Any) -> tuple[Path, list[dict[str, Any]], float]:
    """Write one prompt's λ × α grid (and, with ``save_cells``, every cell) from its runs' ``results``
    ((α, λ) → (image, seconds)); returns the grid's path, its cells and the total generation time."""
    scales, alphas = args.scales, args.alphas
    name = stem(index, prompt)
    rows, cells = [], []
    for alpha in alphas:
        row = []
        for scale in scales:
            image, seconds = results[(alphas[0], 0.0) if scale == 0.0 else (alpha, scale)]
            row.append(image)
            cell = {"row": len(rows), "col": len(row) - 1, "pladis": settings[alpha, scale].as_dict(),
                    "generate_s": round(seconds, 4), "shared_baseline": scale == 0.0}
            if save_cells:
                cell_name = f"{name}-a{alpha:g}-l{scale:g}"
                cell["file"] = f"{cell_name}.png"
                run_.save(image, cell_name, run_.sidecar(
                    session, prompt=prompt, seed=args.seed, pladis=settings[alpha, scale].as_dict(),
                    timings={"generate_s": round(seconds, 4)}))
            cells.append(cell)
        rows.append(row)
    grid, layout = make_grid(
        rows, col_labels=[f"lambda={s:g}" + (" (off)" if s == 0 else "") for s in scales],
        row_labels=[_row_label(a) for a in alphas], title=prompt,
        footer=f"seed {args.seed} · {session.caption()}",
    )
    total = sum(seconds for _, seconds in results.values())
    path = run_.save(grid, f"{name}-sweep", run_.sidecar(
        session, prompt=prompt, seed=args.seed, **sidecar, scales=scales, alphas=alphas,
        pladis={"temperature": args.temperature, "layers": args.layers, "start": args.start, "end": args.end},
        grid=layout, cells=cells, timings={"generate_s": round(total, 4)},
    ))
    return path, cells, total

