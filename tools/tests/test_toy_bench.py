"""The alignment benchmark end to end on its smoke configuration (2 prompts, 1 seed, 1 step)."""

from __future__ import annotations

import json

import pytest
from toy import MODEL_DIR as TOY_MODEL
from toy import bench, data

pytestmark = pytest.mark.skipif(not (TOY_MODEL / "model_index.json").exists(), reason="models/toy not present")


def test_prompts_are_held_out():
    held = {data.prompt_of(s) for s in data.held_out_specs()}
    prompts = bench.prompts()
    assert len(prompts) == len(set(prompts)) == 30 and set(prompts) <= held


def test_smoke_run_writes_table_json_and_plot(tmp_path, capsys):
    results = bench.main(["--smoke", "--model", str(TOY_MODEL), "--threads", "1", "--json", str(tmp_path / "r.json"),
                          "--table", str(tmp_path / "t.md"), "--plot", str(tmp_path / "p.png")])
    n_settings = 1 + (len(bench.SCALES) - 1) * len(bench.ALPHAS)
    assert len(results["cells"]) == len(bench.GUIDANCE) * n_settings
    assert all(len(c["overall"]) == 2 and all(0 <= v <= 1 for v in c["overall"]) for c in results["cells"])
    table = (tmp_path / "t.md").read_text()
    assert "cfg+seg" in table and "lambda=2.5" in table
    assert json.loads((tmp_path / "r.json").read_text())["seeds"] == 1
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "cfg+pag" in capsys.readouterr().out
