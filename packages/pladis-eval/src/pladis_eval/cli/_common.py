"""Options and steps that ``evaluate`` and ``benchmark`` share: metrics, baseline, scoring, the table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

METRIC_NAMES = ("clipscore", "pickscore", "imagereward", "hps", "toy-alignment", "fid")


def metric_model(text: str) -> tuple[str, str]:
    name, sep, model = text.partition("=")
    if not sep or name.strip() not in METRIC_NAMES or not model.strip():
        raise argparse.ArgumentTypeError(f"expected METRIC=ID_OR_DIR with METRIC in {', '.join(METRIC_NAMES)}; "
                                         f"got {text!r}")
    return name.strip(), model.strip()


def add_metric_options(parser: argparse.ArgumentParser, default_metrics: str | None) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("--metrics", default=default_metrics, metavar="M1,M2,…",
                       help=f"comma-separated, from {', '.join(METRIC_NAMES)}"
                            + (f" (default: {default_metrics})" if default_metrics else ""))
    group.add_argument("--reference", type=Path, metavar="DIR", help="real images for FID (e.g. COCO-2014 val)")
    group.add_argument("--baseline", metavar="SETTING",
                       help='the overall baseline, e.g. "cfg=5" (default: the first setting with PLADIS off)')
    group.add_argument("--metric-model", type=metric_model, action="append", default=[], metavar="METRIC=ID_OR_DIR",
                       help="a metric's model instead of its default hub id (a local folder for offline use), "
                            "repeatable")
    group.add_argument("--metric-device", choices=("cpu", "cuda"),
                       help="device of the metric models (default: the process's accelerator, else cpu)")


def build_metrics(args: argparse.Namespace, device: str) -> tuple[list[Any], list[Any]]:
    """The per-image and set metrics named by ``--metrics`` (usage / runtime errors as CLI errors)."""
    from pladis.cli._errors import CLIError, UsageError

    from .. import metrics

    try:
        names = metrics.parse_metric_names(args.metrics or "")
    except ValueError as error:
        raise UsageError(str(error)) from None
    if "fid" in names and args.reference is None:
        raise UsageError("--metrics fid needs --reference DIR (the real images to compare against)")
    models = dict(args.metric_model)
    built = []
    for name in names:
        try:
            built.append(metrics.build(name, model=models.get(name), device=device))
        except metrics.MetricUnavailable as error:
            raise CLIError(str(error)) from None
    return [m for m in built if m.per_image], [m for m in built if not m.per_image]


def metric_device(args: argparse.Namespace, shard: Any) -> str:
    if args.metric_device:
        return args.metric_device
    if shard.device is not None:
        return shard.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_and_write(args: argparse.Namespace, records: list[Any], per_image: list[Any], set_metrics: list[Any],
                       shard: Any, out: Path, order: list[Any] | None = None) -> list[Path]:
    """Score ``records`` (shared out over the processes), then on the main process write and print the
    table; returns the files written (none on the other processes)."""
    from pladis.cli._errors import UsageError

    from ..harness import read_reference, score_records, summarise
    from ..report import markdown, write
    from ..settings import parse_setting

    try:
        baseline = parse_setting(args.baseline) if args.baseline else None
        reference = read_reference(args.reference) if set_metrics else []
    except ValueError as error:
        raise UsageError(str(error)) from None
    scores = score_records(records, per_image, shard)
    if not shard.is_main:
        return []
    try:
        table = summarise(records, scores, set_metrics, reference, baseline=baseline, order=order,
                          models={m.name: m.model for m in per_image + set_metrics})
    except ValueError as error:
        raise UsageError(str(error)) from None
    paths = write(table, out)
    print(markdown(table))
    return paths
