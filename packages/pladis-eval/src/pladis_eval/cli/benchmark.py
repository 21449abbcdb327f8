"""``pladis benchmark``: generate a prompt × seed × setting grid (sharded, resumable) and evaluate it."""

from __future__ import annotations

import argparse

from ._common import add_metric_options

HELP = "generate and evaluate a whole table: settings × prompts × seeds"
DESCRIPTION = """Generate every prompt × seed × setting of the grid with the model (default: the embedded toy
model), then evaluate the images as `pladis evaluate` does. The default settings put PLADIS beside CFG
raised ("just raise CFG"); PLADIS rows are paired with the same guidance without PLADIS.
Images go to OUT/images/<setting>/NNNNN-sSEED.png with sidecars; an interrupted run skips the images on disk.
Under `accelerate launch --num_processes N -m pladis.cli benchmark ...` each process takes a disjoint
share of the grid (logged in OUT/shards/) and the scores are gathered once.
Example: pladis benchmark --model stabilityai/stable-diffusion-xl-base-1.0 --prompts drawbench \\
    --settings "cfg=5;cfg=5,pladis=2;cfg=7.5" --seeds 0-4 --metrics clipscore,pickscore,imagereward,hps"""

DEFAULT_SETTINGS = "cfg=5;cfg=5,pladis=2;cfg=7.5;cfg=10"
_REPLACED = {"guidance_scale": "cfg=W in --settings", "pag_scale": "pag=S in --settings",
             "seg_scale": "seg=S in --settings", "seed": "--seeds"}


def seeds_value(text: str) -> list[int]:
    """``0-4`` or ``0,2,7`` (or a mix: ``0-2,9``) → the seeds in order, each once."""
    seeds: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        low, dash, high = item.partition("-")
        try:
            first, last = (int(low), int(high)) if dash else (int(item), int(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seeds like 0-4 or 0,1,2; got {text!r}") from None
        if first < 0 or last < first:
            raise argparse.ArgumentTypeError(f"seed ranges go from a seed >= 0 up; got {item!r}")
        seeds += range(first, last + 1)
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return list(dict.fromkeys(seeds))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pladis.cli import _options

    parser = subparsers.add_parser("benchmark", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", metavar="SET_OR_FILE",
                        help="drawbench, hpd, pickapic, coco, toy or a .txt/.csv/.json file "
                             "(default: toy with the embedded model, else required)")
    parser.add_argument("--limit", type=_options.positive_int, metavar="N", help="only the first N prompts")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, metavar="S1;S2;…",
                        help=f"rows, each KEY=VALUE,… with keys cfg, pag, seg, pladis (λ), alpha, or 'default' (the preset's own "
                             "guidance) "
                             f"(default: {DEFAULT_SETTINGS})")
    parser.add_argument("--seeds", type=seeds_value, default=[0], metavar="0-4", help="seeds (default: 0)")
    parser.add_argument("--negative-prompt", metavar="TEXT", help="negative prompt for every image")
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    add_metric_options(parser, None)
    _options.add_output_options(parser, "outputs/benchmark")
    # --scale/--alpha/--guidance-scale/--pag-scale/--seg-scale/--seed are replaced by --settings and --seeds
    parser.set_defaults(run=run, guidance_scale=None, scale=None, alpha=None, seed=None)


def run(args: argparse.Namespace) -> int:
    from pladis.cli._errors import UsageError

    from .. import sharding
    from ..generation import generate_grid, grid_jobs
    from ..prompts import load_prompts
    from ..records import read_folder
    from ..settings import parse_settings
    from ._common import build_metrics, evaluate_and_write, metric_device

    for name, instead in _REPLACED.items():
        if getattr(args, name, None):
            raise UsageError(f"--{name.replace('_', '-')} does not apply to benchmark: use {instead}")
    if args.scale is not None or args.alpha is not None:
        raise UsageError("--scale/--alpha do not apply to benchmark: use pladis=L,alpha=A in --settings")
    try:
        settings = parse_settings(args.settings)
        embedded = args.model is None and args.backbone is None  # the toy model
        if args.prompts is None and not embedded:
            raise ValueError("--prompts is required with --model / --backbone (drawbench, hpd, pickapic, coco "
                             "or a FILE)")
        prompts = load_prompts(args.prompts or "toy", args.limit)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.metrics is None:
        args.metrics = "toy-alignment" if embedded else "clipscore,pickscore,imagereward,hps"
    shard = sharding.current()
    per_image, set_metrics = build_metrics(args, metric_device(args, shard))  # fail before generating
    jobs = grid_jobs(settings, prompts, args.seeds)
    generate_grid(args, jobs, shard)
    shard.wait()
    wanted = {(job.setting, job.prompt, job.seed) for job in jobs}
    records = [r for r in read_folder(args.out / "images") if (r.setting, r.prompt, r.seed) in wanted]
    paths = evaluate_and_write(args, records, per_image, set_metrics, shard, args.out, order=settings)
    if shard.is_main and not args.quiet:
        for path in paths:
            print(f"wrote {path}")
    return 0
