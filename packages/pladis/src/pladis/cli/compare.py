"""``pladis compare``: the same seed with PLADIS off and on, side by side with captions."""

from __future__ import annotations

import argparse
import functools

from . import _options, _video
from ._errors import UsageError
from ._grid import make_grid
from ._output import Run, stem
from ._session import load_session

HELP = "same seed with PLADIS off and on, side by side"
DESCRIPTION = """Generate every prompt with the same seed twice, PLADIS off then on, and write them side by side
as one captioned grid (prompt, settings) — plus both images. Per prompt: NN-<prompt>-baseline.png,
NN-<prompt>-pladis.png and NN-<prompt>-compare.png, each with a JSON sidecar (settings, versions, timings).
A video pipeline writes the three as clips (.mp4, or --video-format webp / gif), the compare clip side by side.
Example: pladis compare "a red circle left of a blue square" --out outputs/demo"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    _video.add_video_options(parser)
    _options.add_output_options(parser, "outputs/compare")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prompts = _options.read_prompts(args)
    _options.check_window(args)
    if args.scale == 0:
        raise UsageError("compare needs --scale different from 0 (λ = 0 is the baseline itself)")
    _video.read_image(args)
    session = load_session(args)
    video = _video.prepare(session, args)
    off = _options.pladis_settings(args, scale=0.0)
    on = _options.pladis_settings(args)
    run_ = Run(args, "compare", 2 * len(prompts))
    # a video pipeline's "image" is the list of its frames, written as one animated file
    generate_one = functools.partial(_video.generate, session) if video else session.generate
    save_one = functools.partial(_video.save, run_) if video else run_.save
    suffix = "." + (args.video_format or _video.DEFAULT_FORMAT) if video else ".png"

    baselines = []
    session.apply(off)
    for prompt in prompts:
        baselines.append(generate_one(prompt, args.seed, run_.progress))
    handle = session.apply(on)
    for index, (prompt, (baseline, t_off)) in enumerate(zip(prompts, baselines, strict=True)):
        boosted, t_on = generate_one(prompt, args.seed, run_.progress)
        name = stem(index, prompt)
        common = {"prompt": prompt, "seed": args.seed, **_video.image_record(args)}
        layers = len(handle.layer_names)  # in the PLADIS image and the grid; none in the baseline
        save_one(baseline, f"{name}-baseline", run_.sidecar(
            session, **common, pladis_layers=0, pladis=off.as_dict(), timings={"generate_s": round(t_off, 4)}))
        save_one(boosted, f"{name}-pladis", run_.sidecar(
            session, **common, pladis_layers=layers, pladis=on.as_dict(), timings={"generate_s": round(t_on, 4)}))
        labels, footer = [off.label(), on.label()], f"seed {args.seed} · {session.caption()}"
        if video:
            grid, layout = _video.side_by_side(baseline, boosted, labels, prompt, footer)
        else:
            grid, layout = make_grid([[baseline, boosted]], col_labels=labels, title=prompt, footer=footer)
        cells = [{"file": f"{name}-baseline{suffix}", "pladis": off.as_dict(), "generate_s": round(t_off, 4)},
                 {"file": f"{name}-pladis{suffix}", "pladis": on.as_dict(), "generate_s": round(t_on, 4)}]
        save_one(grid, f"{name}-compare", run_.sidecar(
            session, **common, pladis_layers=layers, pladis=on.as_dict(), grid=layout, cells=cells,
            timings={"generate_s": round(t_off + t_on, 4)},
        ))
    return run_.finish()
