"""Prompt sets of the paper's tables (DrawBench, HPD, Pick-a-Pic, COCO-2014 captions), the toy set, and
prompt files (TXT, CSV, JSON).

=========  =====  =======================================================================================
name       count  source
=========  =====  =======================================================================================
drawbench  200    hub dataset ``sayakpaul/drawbench`` (split ``train``, column ``Prompts``): Saharia et
                  al. 2022's 200 prompts in 11 categories
hpd        400    hub dataset ``ymhao/HPDv2`` (split ``test``, column ``prompt``): HPDv2's benchmark
                  prompts, the first 100 of each style (anime, concept-art, paintings, photo) in order
pickapic   500    hub dataset ``yuvalkirstain/pickapic_v1_no_images`` (split ``test_unique``, column
                  ``caption``): the 500 unique prompts of Pick-a-Pic's test set
coco       30000  COCO-2014 validation captions, ``captions_val2014.json`` of cocodataset.org's
                  ``annotations_trainval2014.zip`` (a local file: ``$PLADIS_COCO_CAPTIONS`` or
                  ``--prompts FILE``), 30K drawn with a fixed seed (the paper: "30K random prompts")
toy        70     the toy model's held-out prompts (``tools/toy/bench.py``: never seen in training)
=========  =====  =======================================================================================

A hub set needs the ``datasets`` package (``pip install "pladis-eval[prompts]"``) and network access or
the hub cache (``HF_HUB_OFFLINE=1`` after one download). Files: ``.txt`` one prompt a line (blank lines
and ``#`` comments skipped); ``.csv`` the column ``prompt``, ``Prompts``, ``caption`` or ``text`` (else
the first); ``.json`` a list of strings, a list of objects with one of those keys, or COCO's
annotation file.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLUMNS = ("prompt", "Prompts", "caption", "text")
COCO_ENV = "PLADIS_COCO_CAPTIONS"
COCO_SEED = 0


@dataclass(frozen=True)
class HubSet:
    """A prompt set on the hub: dataset id, split, column, and how many prompts the paper takes."""

    dataset: str
    split: str
    column: str
    count: int
    per_group: tuple[str, int] | None = None  # (column, n): the first n of each value of that column


HUB_SETS = {
    "drawbench": HubSet("sayakpaul/drawbench", "train", "Prompts", 200),
    "hpd": HubSet("ymhao/HPDv2", "test", "prompt", 400, per_group=("style", 100)),
    "pickapic": HubSet("yuvalkirstain/pickapic_v1_no_images", "test_unique", "caption", 500),
}
PAPER_COUNTS = {"drawbench": 200, "hpd": 400, "pickapic": 500, "coco": 30000}
NAMES = (*HUB_SETS, "coco", "toy")


def load_prompts(source: str, limit: int | None = None) -> list[str]:
    """The prompts of set ``source`` (a name of :data:`NAMES`) or of the file at ``source``, the first
    ``limit`` of them. ValueError for an unknown name, an unreadable or empty file."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1; got {limit}")
    if source in HUB_SETS:
        prompts = _from_hub(source, HUB_SETS[source])
    elif source == "coco":
        path = os.environ.get(COCO_ENV)
        if not path:
            raise ValueError(f"--prompts coco reads COCO-2014's captions_val2014.json (cocodataset.org, "
                             f"annotations_trainval2014.zip): set {COCO_ENV} to its path or pass --prompts FILE")
        prompts = coco_sample(read_file(Path(path)))
    elif source == "toy":
        prompts = toy_prompts()
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"--prompts: {source!r} is neither a prompt set ({', '.join(NAMES)}) nor a file")
        prompts = read_file(path)
        if path.name.startswith("captions_") and path.suffix == ".json":  # COCO's annotation file
            prompts = coco_sample(prompts)
    return prompts[:limit] if limit else prompts


def read_file(path: Path) -> list[str]:
    """The prompts of a ``.txt``, ``.csv`` or ``.json`` file (ValueError if unreadable or empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--prompts: cannot read {str(path)!r}: {getattr(error, 'strerror', None) or error}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        column = next((c for c in COLUMNS if rows and c in rows[0]), None) or (next(iter(rows[0])) if rows else None)
        prompts = [row[column] for row in rows] if column else []
    elif path.suffix.lower() == ".json":
        try:
            prompts = _from_json(json.loads(text))
        except ValueError as error:
            raise ValueError(f"--prompts: {str(path)!r}: {error}") from None
    else:
        prompts = [line for line in text.splitlines() if not line.strip().startswith("#")]
    prompts = [" ".join(str(p).split()) for p in prompts if p is not None and str(p).strip()]
    if not prompts:
        raise ValueError(f"--prompts: {str(path)!r} holds no prompt")
    return prompts


def coco_sample(captions: Sequence[str], count: int = PAPER_COUNTS["coco"], seed: int = COCO_SEED) -> list[str]:
    """``count`` captions drawn without replacement with a fixed seed (all of them, shuffled, if fewer)."""
    rng = random.Random(seed)
    return rng.sample(list(captions), min(count, len(captions)))


def toy_prompts() -> list[str]:
    """The toy benchmark's held-out prompts (``tools/toy/bench.py``'s ``prompts()``)."""
    from .metrics import toy_scorer

    toy_scorer()  # puts the repository's tools/ folder on sys.path (or says where it is missing)
    from toy import bench

    return bench.prompts()


def _from_json(data: Any) -> list[str]:
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):  # COCO captions_*.json
        return [a.get("caption") for a in data["annotations"] if isinstance(a, dict)]
    if not isinstance(data, list):
        raise ValueError("expected a list of prompts (strings or objects with a 'prompt' key)")
    out = []
    for item in data:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.append(next((item[c] for c in COLUMNS if c in item), None))
    return out


def _from_hub(name: str, spec: HubSet) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"--prompts {name} loads {spec.dataset} with the package datasets, which is not "
                         f'installed: pip install "pladis-eval[prompts]", or pass --prompts FILE') from None
    try:
        rows = datasets.load_dataset(spec.dataset, split=spec.split)
    except Exception as error:  # offline, unknown split, ...: one message with the way out
        raise ValueError(f"--prompts {name}: cannot load the hub dataset {spec.dataset!r} ({type(error).__name__}); "
                         f"download it while online (then HF_HUB_OFFLINE=1 works) or pass --prompts FILE") from None
    if spec.per_group:
        group, n = spec.per_group
        seen: dict[Any, int] = {}
        prompts = []
        for row in rows:
            if seen.get(row[group], 0) < n:
                seen[row[group]] = seen.get(row[group], 0) + 1
                prompts.append(row[spec.column])
    else:
        prompts = list(dict.fromkeys(rows[spec.column]))
    return [" ".join(str(p).split()) for p in prompts][: spec.count]
