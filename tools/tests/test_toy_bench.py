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


def test_smoke_run_is_a_pladis_benchmark_with_the_toy_alignment_metric(tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench.main(["--limit", "2", "--seeds", "0", "--steps", "1", "--settings", "cfg=1;cfg=1,pladis=2",
                       "--out", str(out), "-q"]) == 0
    rows = json.loads((out / "evaluation.json").read_text())["rows"]
    assert [(r["setting"], r["metric"], r["images"]) for r in rows] == [
        ("cfg=1", "toy-alignment", 2), ("cfg=1,pladis=2", "toy-alignment", 2)]
    assert all(0 <= r["mean"] <= 100 for r in rows) and rows[1]["baseline"] == "cfg=1"
    assert "| cfg=1,pladis=2 | 2 | cfg=1 |" in capsys.readouterr().out
    assert (out / "evaluation.png").stat().st_size > 1000


def test_default_rows_put_pladis_beside_raised_cfg():
    from pladis_eval.settings import parse_settings

    labels = [s.label for s in parse_settings(bench.SETTINGS)]
    assert {"cfg=5", "cfg=5,pladis=2", "cfg=7.5", "cfg=5,pag=3,pladis=2", "cfg=5,seg=3,pladis=2"} <= set(labels)
