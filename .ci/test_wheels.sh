#!/usr/bin/env bash
# The wheel install a user gets: build every distribution's wheel (`make wheels`), install them
# non-editable into a fresh virtualenv outside the repository (torch==2.13.0 from a local wheel file
# first when there is one: TORCH_WHEEL, else the pip find-links folder /opt/wheels), then run
# `pladis compare` there on the embedded default model and check its outputs.
#   .ci/test_wheels.sh            (EXTRAS=all by default; KEEP=1 keeps the temp folder)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-all}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pladis-wheels.XXXXXX")"
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
case "$WORK" in "$ROOT"/*) echo "test_wheels: the temp folder must be outside the repository" >&2; exit 1;; esac

make -C "$ROOT" --no-print-directory wheels PYTHON="$PYTHON" DIST="$WORK/dist"
"$PYTHON" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip install --disable-pip-version-check -q)
TORCH_WHEEL="${TORCH_WHEEL:-$(ls /opt/wheels/torch-2.13.0*.whl 2>/dev/null | head -n 1 || true)}"
"${PIP[@]}" "${TORCH_WHEEL:-torch==2.13.0}"
"${PIP[@]}" -c "$ROOT/constraints.txt" --find-links "$WORK/dist" "pladis[$EXTRAS]"

cd "$WORK"  # outside the repository: nothing of the checkout is importable from here
"$WORK/venv/bin/pladis" compare "a red circle left of a blue square" --out "$WORK/out" -q
"$WORK/venv/bin/pladis" plugins > "$WORK/plugins.txt"
"$WORK/venv/bin/python" - "$WORK" "$ROOT" <<'PY'
import json, sys
from pathlib import Path

import numpy as np
from PIL import Image

import pladis

work, root = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
where = Path(pladis.__file__).resolve()
assert root not in where.parents and "site-packages" in where.parts, f"pladis imported from {where}"
out = work / "out"
stem = "00-a-red-circle-left-of-a-blue-square"
names = {f"{stem}-{kind}.{ext}" for kind in ("baseline", "pladis", "compare") for ext in ("png", "json")}
assert names <= {p.name for p in out.iterdir()}, sorted(p.name for p in out.iterdir())
baseline, boosted = (np.asarray(Image.open(out / f"{stem}-{k}.png"), dtype=np.int16) for k in ("baseline", "pladis"))
assert baseline.shape == boosted.shape == (16, 16, 3), baseline.shape
assert np.abs(baseline - boosted).max() > 0, "PLADIS on and off gave the same image"
meta = json.loads((out / f"{stem}-pladis.json").read_text())
assert meta["model"]["embedded"] is True and meta["pladis"]["enabled"] is True, meta["model"]
plugins = (work / "plugins.txt").read_text()
assert "pladis-adapter-sd15" in plugins and "sample" not in plugins, plugins
print(f"test_wheels: ok: pladis from {where.parent}, max pixel difference {np.abs(baseline - boosted).max()}")
PY
