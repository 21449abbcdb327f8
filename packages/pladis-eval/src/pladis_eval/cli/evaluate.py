"""``pladis evaluate``: score a folder of images (written by generate / sweep / benchmark) per setting."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_metric_options

HELP = "score a folder of images: mean and 95-percent CI per setting, paired difference to the baseline"
DESCRIPTION = """Score every image of --images (prompt, seed and settings read from its JSON sidecar) with the
chosen metrics and print the paper's kind of table: per setting mean ± 95 % CI, and in brackets the paired
difference (same prompt and seed) to the setting's baseline. Writes evaluation.{md,csv,json,png} (the plot:
each metric against λ) into --out (default: the images folder).
Example: pladis evaluate --images outputs/sweep --metrics clipscore,pickscore"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of PNGs with sidecars")
    parser.add_argument("--prompts", type=Path, metavar="FILE",
                        help="prompts for images whose sidecar has none (by prompt_index, else in file order)")
    add_metric_options(parser, "clipscore")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where the table goes (default: --images)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no list of written files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pladis.cli._errors import UsageError

    from .. import sharding
    from ..prompts import read_file
    from ..records import read_folder
    from ._common import build_metrics, evaluate_and_write, metric_device

    try:
        prompts = read_file(args.prompts) if args.prompts else None
        records = read_folder(args.images, prompts)
    except ValueError as error:
        raise UsageError(str(error)) from None
    shard = sharding.current()
    per_image, set_metrics = build_metrics(args, metric_device(args, shard))
    paths = evaluate_and_write(args, records, per_image, set_metrics, shard, args.out or args.images)
    if not args.quiet:
        for path in paths:
            print(f"wrote {path}")
    return 0
