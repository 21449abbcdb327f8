"""Fixtures shared by the CLI tests on video pipelines."""

from __future__ import annotations

import pytest

from pladis.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.startswith("pladis")]

    return run
