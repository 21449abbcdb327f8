"""Score a set of images with the chosen metrics and summarise them per setting, paired with baselines.

Per-image metrics are computed on each process's share of the images (:mod:`pladis_eval.sharding`)
and gathered once; set metrics (FID) run on the main process. A setting with PLADIS on is paired with
the same guidance with PLADIS off; a PLADIS-off setting with the overall baseline (``baseline``, by
default the first PLADIS-off setting), so "just raise CFG" gets its own paired difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metrics import Metric, SetMetric
from .records import ImageRecord
from .settings import Setting
from .sharding import Shard, single_process
from .stats import Estimate, mean_ci, paired_difference

#: Images held in memory at a time while scoring.
CHUNK = 256


@dataclass
class Cell:
    """One metric of one setting: the estimate, and the paired difference to the row's baseline."""

    value: Estimate
    difference: Estimate | None = None


@dataclass
class Row:
    setting: Setting
    baseline: Setting | None
    images: int
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class Table:
    rows: list[Row]
    metrics: list[str]
    higher_is_better: dict[str, bool]
    models: dict[str, str | None]


def choose_baselines(settings: Sequence[Setting], baseline: Setting | None = None) -> dict[Setting, Setting | None]:
    """Each setting's baseline: PLADIS rows → same guidance without PLADIS (else the overall baseline);
    PLADIS-off rows → the overall baseline (``baseline``, else the first PLADIS-off setting)."""
    overall = baseline if baseline is not None else next((s for s in settings if not s.pladis), None)
    if baseline is not None and baseline not in settings:
        raise ValueError(f"--baseline {baseline.label!r} is not among the settings: "
                         + ", ".join(s.label for s in settings))
    out: dict[Setting, Setting | None] = {}
    for setting in settings:
        own = setting.baseline()
        candidate = own if setting.pladis and own in settings else overall
        out[setting] = None if candidate == setting else candidate
    return out


def score_records(records: Sequence[ImageRecord], metrics: Sequence[Metric],
                  shard: Shard | None = None) -> dict[str, dict[Path, float]]:
    """``{metric: {image path: score}}`` for every record: each process scores its share, then all
    shares are gathered (every process gets the whole dictionary)."""
    shard = shard or single_process()
    mine = shard.take(list(records))
    local: list[tuple[str, str, float]] = []
    for start in range(0, len(mine), CHUNK):  # a chunk of images in memory at a time
        chunk = mine[start:start + CHUNK]
        images = LazyImages([r.path for r in chunk])[:]
        for metric in metrics:
            for record, value in zip(chunk, metric.score(images, [r.prompt for r in chunk]), strict=True):
                local.append((metric.name, str(record.path), value))
    scores: dict[str, dict[Path, float]] = {m.name: {} for m in metrics}
    for name, path, value in shard.gather(local):
        scores[name][Path(path)] = value
    return scores


def summarise(records: Sequence[ImageRecord], scores: dict[str, dict[Path, float]],
              set_metrics: Sequence[SetMetric] = (), reference: Sequence[Any] = (),
              baseline: Setting | None = None, order: Sequence[Setting] | None = None,
              models: dict[str, str | None] | None = None) -> Table:
    """The table: per setting (in ``order``, else sorted) each metric's mean ± CI and paired difference."""
    by_setting: dict[Setting, list[ImageRecord]] = {}
    for record in records:
        by_setting.setdefault(record.setting, []).append(record)
    settings = [s for s in (order or sorted(by_setting, key=_sort_key)) if s in by_setting]
    baselines = choose_baselines(settings, baseline)
    rows = [Row(s, baselines[s], len(by_setting[s])) for s in settings]
    for name, values in scores.items():
        per_key = {s: {r.key: values[r.path] for r in by_setting[s]} for s in settings}
        for row in rows:
            cell = Cell(mean_ci(list(per_key[row.setting].values())))
            if row.baseline is not None:
                cell.difference = paired_difference(per_key[row.setting], per_key[row.baseline])
            row.cells[name] = cell
    for metric in set_metrics:
        if not reference:
            raise ValueError(f"metric {metric.name!r} needs --reference DIR (real images to compare against)")
        values = {s: metric.distance(LazyImages([r.path for r in by_setting[s]]), reference) for s in settings}
        for row in rows:
            diff = None if row.baseline is None else Estimate(values[row.setting] - values[row.baseline],
                                                              float("nan"), row.images)
            row.cells[metric.name] = Cell(Estimate(values[row.setting], float("nan"), row.images), diff)
    names = list(scores) + [m.name for m in set_metrics]
    higher = {**{name: True for name in scores}, **{m.name: m.higher_is_better for m in set_metrics}}
    return Table(rows, names, higher, dict(models or {}))


def _sort_key(setting: Setting) -> tuple:
    return (setting.pag, setting.seg, setting.cfg if setting.cfg is not None else -1.0, setting.pladis != 0,
            setting.alpha, setting.pladis)


class LazyImages(Sequence):
    """Image files read as RGB PIL images only when indexed (30K images do not fit in memory)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> Any:
        from PIL import Image

        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        with Image.open(self.paths[index]) as image:
            return image.convert("RGB")


def read_reference(folder: Path) -> LazyImages:
    """The images of ``--reference DIR`` (PNG/JPEG/WebP, recursively), sorted by path, read lazily."""
    if not folder.is_dir():
        raise ValueError(f"--reference: {str(folder)!r} is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if len(paths) < 2:
        raise ValueError(f"--reference: {str(folder)!r} holds {len(paths)} image(s); FID needs at least 2")
    return LazyImages(paths)
