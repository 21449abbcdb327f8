"""tools/new_adapter.py writes a complete adapter distribution from adapters/_template/."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import new_adapter
import pytest


def _create(tmp_path: Path, pag: str | None = "MyPAGPipeline") -> dict[str, Path]:
    values = new_adapter.placeholders("my-dit", "My DiT", "MyPipeline", pag, "MyTransformer2DModel", "org/my-dit")
    return {str(p.relative_to(tmp_path / "adapters" / "my-dit")): p for p in new_adapter.create("my-dit", values, tmp_path)}


def test_the_template_becomes_a_filled_in_distribution(tmp_path: Path) -> None:
    files = _create(tmp_path)
    assert set(files) == {"README.md", "pyproject.toml", "src/pladis_adapter_my_dit/__init__.py",
                          "src/pladis_adapter_my_dit/adapter.py", "src/pladis_adapter_my_dit/tiny.py",
                          "tests/test_my_dit_contract.py"}
    for path in files.values():
        assert "__NAME__" not in path.read_text() and "__PACKAGE__" not in path.read_text()
        if path.suffix == ".py":
            ast.parse(path.read_text())
    project = tomllib.loads(files["pyproject.toml"].read_text())
    assert project["project"]["name"] == "pladis-adapter-my-dit"
    assert project["project"]["entry-points"]["pladis.adapters"] == {"my-dit": "pladis_adapter_my_dit.adapter"}
    assert project["tool"]["pladis"] == {"extra": "my-dit", "onnx-tests": False, "tiny-pipeline-tests": True}
    adapter = files["src/pladis_adapter_my_dit/adapter.py"].read_text()
    assert 'pipeline_classes=("MyPipeline", "MyPAGPipeline"),' in adapter
    assert 'pipeline_loader("MyPipeline", DEFAULT_MODEL, pag_pipeline="MyPAGPipeline")' in adapter
    assert "from pladis_adapter_my_dit import SPEC" in files["tests/test_my_dit_contract.py"].read_text()


def test_without_pag_pipeline_and_refusals(tmp_path: Path) -> None:
    files = _create(tmp_path, pag=None)
    adapter = files["src/pladis_adapter_my_dit/adapter.py"].read_text()
    assert 'pipeline_classes=("MyPipeline",),' in adapter and "pag_pipeline=None" in adapter
    with pytest.raises(FileExistsError):
        _create(tmp_path)
    with pytest.raises(ValueError, match=r"name must be lower-case"):
        new_adapter.create("My_DiT", {}, tmp_path)
