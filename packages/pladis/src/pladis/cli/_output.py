"""Writing results: file names, images with JSON sidecars, versions, progress bars."""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ._errors import CLIError, one_line

_DISTRIBUTIONS = ("pladis", "pladis-registry", "torch", "diffusers", "transformers", "numpy", "pillow", "tqdm")


def stem(index: int, prompt: str, width: int = 40) -> str:
    """``03-a-red-circle-left-of`` : the prompt's index and a file-name-safe slug of its start."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:width].rstrip("-") or "prompt"
    return f"{index:02d}-{slug}"


@functools.cache
def versions() -> dict[str, str | None]:
    """Versions of Python, the PLADIS distributions and the libraries the images depend on."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import torch

        found["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            found["gpu"] = torch.cuda.get_device_name()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return found


class Run:
    """One command's output folder, clock, progress bar and list of written files."""

    def __init__(self, args: argparse.Namespace, command: str, total_images: int) -> None:
        self.args = args
        self.command = command
        self.out: Path = args.out
        self.started = time.perf_counter()
        self.written: list[Path] = []
        self._noted: set[str] = set()  # prompts whose truncation was reported
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CLIError(f"cannot create output folder {str(self.out)!r}: {error.strerror or error}") from None
        self.progress = Progress(total_images, f"pladis {command}", disable=args.quiet)

    def sidecar(self, session: Any, **fields: Any) -> dict[str, Any]:
        """The JSON record of one output image: command, settings, model, versions, timings."""
        record: dict[str, Any] = {"command": self.command, "argv": list(getattr(self.args, "argv", []))}
        record.update(fields)
        if "prompt" in fields and hasattr(session, "prompt_truncation"):
            record["prompt_truncated"] = cut = session.prompt_truncation(fields["prompt"])
            if cut and fields["prompt"] not in self._noted and not self.args.quiet:
                self._noted.add(fields["prompt"])
                print(f"pladis: note: the prompt {one_line(fields['prompt'], 60)!r} is {cut['tokens']} tokens; "
                      f"the {cut['tokenizer']} keeps the first {cut['limit']} (recorded in the sidecar)",
                      file=sys.stderr)
        record.update(session.describe())
        record["versions"] = versions()
        timings = dict(record.pop("timings", {}))
        timings.update(load_s=round(session.load_s, 4),
                       command_elapsed_s=round(time.perf_counter() - self.started, 4))
        record["timings"] = timings
        record["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (3.10)
        return record

    def save(self, image: Any, name: str, record: dict[str, Any]) -> Path:
        """Write ``name``.png and its sidecar ``name``.json (the record plus file name and size)."""
        path = self.out / f"{name}.png"
        record = {"file": path.name, "image_size": list(image.size), **record}
        try:
            image.save(path)
            path.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        except OSError as error:
            raise CLIError(f"cannot write {str(path)!r}: {one_line(error)}") from None
        self.written += [path, path.with_suffix(".json")]
        return path

    def add_file(self, path: Path) -> None:
        self.written.append(path)

    def finish(self) -> int:
        self.progress.close()
        if not self.args.quiet:
            for path in self.written:
                print(f"wrote {path}")
        return 0


class Progress:
    """A progress bar over images that also shows the denoising step of the running image."""

    def __init__(self, total: int, desc: str, *, disable: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="img", disable=disable, file=sys.stderr, dynamic_ncols=True)

    def on_step(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        """diffusers' ``callback_on_step_end``: show ``step`` of ``num_timesteps``."""
        total = getattr(pipe, "num_timesteps", None) or "?"
        self.bar.set_postfix_str(f"step {step + 1}/{total}", refresh=True)
        return callback_kwargs

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
