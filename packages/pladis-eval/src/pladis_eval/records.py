"""The images of an output folder and what their JSON sidecars say (prompt, seed, setting)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import Setting, setting_of_record


@dataclass(frozen=True)
class ImageRecord:
    """One scored image: its file, prompt, seed and setting (images of equal ``key`` are paired)."""

    path: Path
    prompt: str
    seed: int
    setting: Setting

    @property
    def key(self) -> tuple[str, int]:
        return (self.prompt, self.seed)


def read_folder(folder: Path, prompts: list[str] | None = None) -> list[ImageRecord]:
    """Every image of ``folder`` (recursively) that has a sidecar with a prompt and a seed, sorted by path.

    Grids (``compare`` / ``sweep`` sidecars with a ``grid`` layout) are skipped. ``prompts`` (from
    ``--prompts FILE``) fills in images whose sidecar has no prompt, by the sidecar's ``prompt_index``
    or else by the order of the images. ValueError when the folder holds no such image.
    """
    if not folder.is_dir():
        raise ValueError(f"--images: {str(folder)!r} is not a folder")
    found = []
    for index, sidecar in enumerate(sorted(folder.rglob("*.json"))):
        record = _read(sidecar)
        if record is None or "grid" in record or not sidecar.with_suffix(".png").is_file():
            continue
        prompt = record.get("prompt")
        if prompt is None and prompts:
            position = record.get("prompt_index", index)
            prompt = prompts[position] if isinstance(position, int) and position < len(prompts) else None
        if prompt is None or "seed" not in record:
            continue
        found.append(ImageRecord(sidecar.with_suffix(".png"), str(prompt), int(record["seed"]),
                                 setting_of_record(record)))
    if not found:
        raise ValueError(f"--images: no image with a sidecar naming its prompt and seed in {str(folder)!r} "
                         "(write the folder with pladis generate, sweep --save-cells or benchmark)")
    seen: dict[tuple, Path] = {}
    for record in found:  # pairs must be unambiguous: one image per setting, prompt and seed
        key = (record.setting, *record.key)
        if key in seen:
            raise ValueError(f"--images: {str(seen[key])!r} and {str(record.path)!r} are both setting "
                             f"{record.setting.label!r}, prompt {record.prompt!r}, seed {record.seed}: "
                             "score one run (one model) per folder")
        seen[key] = record.path
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None
