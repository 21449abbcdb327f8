"""The lists of built-in adapters are derived from adapters/*/pyproject.toml and kept in sync."""

from __future__ import annotations

import ast
import shutil
import tomllib
from pathlib import Path

import pytest
import sync_adapters


def test_the_repository_lists_are_in_sync() -> None:
    assert sync_adapters.sync(check=True) == [], "run: python tools/sync_adapters.py"


def test_the_lists_hold_every_adapter_of_the_tree() -> None:
    adapters = sync_adapters.discover()
    dists = {a.distribution for a in adapters}
    assert {p.parent.name for p in (sync_adapters.ROOT / "adapters").glob("*/pyproject.toml")} == {
        a.backbone for a in adapters}
    from pladis_registry.manager import BUILTIN_DISTRIBUTIONS

    assert BUILTIN_DISTRIBUTIONS == dists
    extras = tomllib.loads((sync_adapters.ROOT / "packages/pladis/pyproject.toml").read_text())
    extras = extras["project"]["optional-dependencies"]
    listed = {d for a in adapters if a.extra for d in extras[a.extra]}
    assert listed == {a.distribution for a in adapters if a.extra}
    assert extras["all"] == [f"pladis[{','.join(sorted({a.extra for a in adapters if a.extra}))}]"]


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for relative in sync_adapters.TARGETS:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sync_adapters.ROOT / relative, root / relative)
    for path in (sync_adapters.ROOT / "adapters").glob("*/pyproject.toml"):
        (root / "adapters" / path.parent.name).mkdir(parents=True)
        shutil.copy(path, root / "adapters" / path.parent.name / "pyproject.toml")
    return root


def _add(root: Path, name: str, table: str) -> None:
    folder = root / "adapters" / name
    folder.mkdir()
    (folder / "pyproject.toml").write_text(f'[project]\nname = "pladis-adapter-{name}"\n\n[tool.pladis]\n{table}\n')


def test_adding_an_adapter_is_one_command(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    _add(root, "newbone", 'extra = "newbone"\nonnx-tests = true\ntiny-pipeline-tests = true')
    assert sorted(sync_adapters.sync(root, check=True)) == sorted(sync_adapters.TARGETS)
    assert sync_adapters.sync(root) and sync_adapters.sync(root, check=True) == []
    pladis = tomllib.loads((root / "packages/pladis/pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert pladis["newbone"] == ["pladis-adapter-newbone"] and "newbone" in pladis["all"][0]
    assert "onnx" in pladis and "test" in pladis  # the hand-kept extras stay
    onnx = tomllib.loads((root / "packages/pladis-onnx/pyproject.toml").read_text())["project"]
    assert "pladis-adapter-newbone" in onnx["optional-dependencies"]["test"]
    manager = (root / "registry/src/pladis_registry/manager.py").read_text()
    namespace: dict = {}
    exec(manager[manager.index("BUILTIN_DISTRIBUTIONS"):manager.index(sync_adapters.END)], namespace)
    assert "pladis-adapter-newbone" in namespace["BUILTIN_DISTRIBUTIONS"]
    before = _backbones(sync_adapters.ROOT / "integration_tests/test_tiny_pipelines.py")
    assert _backbones(root / "integration_tests/test_tiny_pipelines.py") == tuple(sorted({*before, "newbone"}))


def _backbones(path: Path) -> tuple[str, ...]:
    line = next(line for line in path.read_text().splitlines() if line.startswith("BACKBONES = "))
    return ast.literal_eval(line.removeprefix("BACKBONES = "))


def test_bad_declarations_are_refused(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    _add(root, "typo", 'extras = "typo"')
    with pytest.raises(ValueError, match=r"typo/pyproject.toml: unknown \[tool.pladis\] keys \['extras'\]"):
        sync_adapters.discover(root)
    shutil.rmtree(root / "adapters" / "typo")
    (root / "adapters" / "bare").mkdir()
    (root / "adapters" / "bare" / "pyproject.toml").write_text('[project]\nname = "pladis-adapter-bare"\n')
    with pytest.raises(ValueError, match=r"bare/pyproject.toml: add a \[tool.pladis\] table"):
        sync_adapters.discover(root)
    shutil.rmtree(root / "adapters" / "bare")
    (root / "adapters" / "odd").mkdir()
    (root / "adapters" / "odd" / "pyproject.toml").write_text('[project]\nname = "odd-adapter"\n')
    with pytest.raises(ValueError, match=r"must be named pladis-adapter-<backbone>"):
        sync_adapters.discover(root)


def test_a_file_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"x.py: expected one block between"):
        sync_adapters.render("BACKBONES = ()\n", "BACKBONES = ('a',)", "x.py")
