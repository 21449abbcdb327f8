"""``pladis compare``: the same seed with PLADIS off and on, side by side with captions."""

from __future__ import annotations

import argparse

from . import _options
from ._errors import UsageError
from ._grid import make_grid
from ._output import Run, stem
from ._session import load_session

HELP = "same seed with PLADIS off and on, side by side"
DESCRIPTION = """Generate every prompt with the same seed twice, PLADIS off then on, and write them side by side
as one captioned grid (prompt, settings) — plus both images. Per prompt: NN-<prompt>-baseline.png,
NN-<prompt>-pladis.png and NN-<prompt>-compare.png, each with a JSON sidecar (settings, versions, timings).
Example: pladis compare "a red circle left of a blue square" --out outputs/demo"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    _options.add_output_options(parser, "outputs/compare")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prompts = _options.read_prompts(args)
    _options.check_window(args)
    if args.scale == 0:
        raise UsageError("compare needs --scale different from 0 (λ = 0 is the baseline itself)")
    session = load_session(args)
    off = _options.pladis_settings(args, scale=0.0)
    on = _options.pladis_settings(args)
    run_ = Run(args, "compare", 2 * len(prompts))

    baselines = []
    session.apply(off)
    for prompt in prompts:
        baselines.append(session.generate(prompt, args.seed, run_.progress))
    handle = session.apply(on)
    for index, (prompt, (baseline, t_off)) in enumerate(zip(prompts, baselines, strict=True)):
        boosted, t_on = session.generate(prompt, args.seed, run_.progress)
        name = stem(index, prompt)
        common = {"prompt": prompt, "seed": args.seed}
        layers = len(handle.layer_names)  # in the PLADIS image and the grid; none in the baseline
        run_.save(baseline, f"{name}-baseline", run_.sidecar(
            session, **common, pladis_layers=0, pladis=off.as_dict(), timings={"generate_s": round(t_off, 4)}))
        run_.save(boosted, f"{name}-pladis", run_.sidecar(
            session, **common, pladis_layers=layers, pladis=on.as_dict(), timings={"generate_s": round(t_on, 4)}))
        grid, layout = make_grid(
            [[baseline, boosted]], col_labels=[off.label(), on.label()], title=prompt,
            footer=f"seed {args.seed} · {session.caption()}",
        )
        cells = [{"file": f"{name}-baseline.png", "pladis": off.as_dict(), "generate_s": round(t_off, 4)},
                 {"file": f"{name}-pladis.png", "pladis": on.as_dict(), "generate_s": round(t_on, 4)}]
        run_.save(grid, f"{name}-compare", run_.sidecar(
            session, **common, pladis_layers=layers, pladis=on.as_dict(), grid=layout, cells=cells,
            timings={"generate_s": round(t_off + t_on, 4)},
        ))
    return run_.finish()
