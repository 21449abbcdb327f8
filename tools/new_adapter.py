"""Start a new built-in adapter from adapters/_template/ and add it to every list of built-in adapters.

    python tools/new_adapter.py pixart --title "PixArt-Sigma" --pipeline PixArtSigmaPipeline \\
        --pag-pipeline PixArtSigmaPAGPipeline --denoiser PixArtTransformer2DModel \\
        --default-model PixArt-alpha/PixArt-Sigma-XL-2-1024-MS

writes adapters/pixart/ (pyproject with its ``[tool.pladis]`` table, README, ``pladis_adapter_pixart``
with ``adapter.py``, ``tiny.py``, and a contract test) and runs tools/sync_adapters.py. What is left to
write is marked ``TEMPLATE:`` in the new files: the tiny config, the presets, the layer locations.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import sync_adapters

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "adapters" / "_template"


def placeholders(name: str, title: str, pipeline: str, pag_pipeline: str | None, denoiser: str,
                 default_model: str) -> dict[str, str]:
    """The values of the template's ``__PLACEHOLDERS__``."""
    snake = name.replace("-", "_").replace(".", "_")
    classes = ", ".join(f'"{c}"' for c in (pipeline, pag_pipeline) if c)
    return {
        "__NAME__": name,
        "__SNAKE__": snake,
        "__PACKAGE__": f"pladis_adapter_{snake}",
        "__TITLE__": title,
        "__PIPELINE__": pipeline,
        "__PAG_PIPELINE_OR_NONE__": "None" if pag_pipeline is None else f'"{pag_pipeline}"',
        "__PIPELINE_CLASSES__": f"({classes},)" if pag_pipeline is None else f"({classes})",
        "__DENOISER__": denoiser,
        "__DEFAULT_MODEL__": default_model,
    }


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def create(name: str, values: dict[str, str], root: Path = ROOT) -> list[Path]:
    """Copy the template's ``*.in`` files to ``adapters/<name>/``, placeholders filled; return the files."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"name must be lower-case [a-z0-9-] (the backbone name); got {name!r}")
    target = root / "adapters" / name
    if target.exists():
        raise FileExistsError(f"{target} exists already")
    written = []
    for source in sorted(TEMPLATE.rglob("*.in")):
        path = target / fill(str(source.relative_to(TEMPLATE)), values).removesuffix(".in")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fill(source.read_text(), values))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("name", help="the backbone name, e.g. pixart (distribution pladis-adapter-NAME)")
    parser.add_argument("--title", required=True, help="the model family in words, e.g. PixArt-Sigma")
    parser.add_argument("--pipeline", required=True, help="the diffusers pipeline class")
    parser.add_argument("--pag-pipeline", help="its PAG pipeline class, if diffusers has one")
    parser.add_argument("--denoiser", required=True, help="the denoiser class (UNet or transformer)")
    parser.add_argument("--default-model", required=True, help="the hub id loaded when no model is given")
    args = parser.parse_args(argv)
    values = placeholders(args.name, args.title, args.pipeline, args.pag_pipeline, args.denoiser, args.default_model)
    try:
        written = create(args.name, values)
    except (ValueError, FileExistsError) as error:
        print(f"new_adapter: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    for path in sync_adapters.sync():
        print(f"updated {path}")
    print("next: fill in the TEMPLATE: lines, `make install`, then run the adapter's tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
