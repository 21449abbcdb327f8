"""Prompt sets and prompt files."""

from __future__ import annotations

import builtins
import json

import pytest
from pladis_eval import prompts


def test_text_csv_and_json_files(tmp_path):
    (tmp_path / "p.txt").write_text("# comment\na cat\n\n  a   dog \n", encoding="utf-8")
    assert prompts.load_prompts(str(tmp_path / "p.txt")) == ["a cat", "a dog"]
    (tmp_path / "p.csv").write_text("Category,Prompts\nColors,a red cube\nCount,two dogs\n", encoding="utf-8")
    assert prompts.load_prompts(str(tmp_path / "p.csv")) == ["a red cube", "two dogs"]
    (tmp_path / "p.json").write_text(json.dumps(["x", {"caption": "y"}, {"prompt": "z"}]), encoding="utf-8")
    assert prompts.load_prompts(str(tmp_path / "p.json"), limit=2) == ["x", "y"]


def test_coco_annotation_file_is_sampled_with_a_fixed_seed(tmp_path):
    captions = {"annotations": [{"image_id": i, "caption": f"caption {i}"} for i in range(50)]}
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps(captions), encoding="utf-8")
    first = prompts.load_prompts(str(path))
    assert sorted(first) == sorted(f"caption {i}" for i in range(50)) and first != sorted(first)
    assert prompts.load_prompts(str(path)) == first and prompts.coco_sample(first, 7) == prompts.coco_sample(first, 7)
    assert len(prompts.coco_sample(first, 7)) == 7


def test_coco_without_a_file_says_where_the_captions_come_from(monkeypatch):
    monkeypatch.delenv(prompts.COCO_ENV, raising=False)
    with pytest.raises(ValueError, match="captions_val2014.json.*PLADIS_COCO_CAPTIONS"):
        prompts.load_prompts("coco")


def test_paper_counts_and_hub_sources():
    assert prompts.PAPER_COUNTS == {"drawbench": 200, "hpd": 400, "pickapic": 500, "coco": 30000}
    assert {name: s.count for name, s in prompts.HUB_SETS.items()} == {"drawbench": 200, "hpd": 400, "pickapic": 500}


def test_hub_set_without_datasets_names_the_package_and_extra(monkeypatch):
    real = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ValueError, match=r'sayakpaul/drawbench with the package datasets.*pladis-eval\[prompts\]'):
        prompts.load_prompts("drawbench")


def test_hub_set_takes_the_papers_count_and_groups(monkeypatch):
    import sys
    import types

    rows = [{"prompt": f"{style} {i}", "style": style} for style in ("anime", "photo") for i in range(150)]
    fake = types.SimpleNamespace(load_dataset=lambda dataset, split: rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    got = prompts.load_prompts("hpd")
    assert len(got) == 200 and got[99] == "anime 99" and got[100] == "photo 0"


def test_the_toy_set_is_the_held_out_prompts():
    toy = prompts.load_prompts("toy")
    from toy import data

    held = {data.prompt_of(s) for s in data.held_out_specs()}
    assert len(toy) == 30 and set(toy) <= held


def test_bad_sources_and_limits(tmp_path):
    with pytest.raises(ValueError, match="neither a prompt set .*drawbench.* nor a file"):
        prompts.load_prompts("nosuchset")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no prompt"):
        prompts.load_prompts(str(tmp_path / "empty.txt"))
    with pytest.raises(ValueError, match="--limit must be >= 1"):
        prompts.load_prompts("toy", limit=0)
