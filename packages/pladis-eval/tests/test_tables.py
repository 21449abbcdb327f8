"""Settings, confidence intervals, pairing, baselines and the table format."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pladis_eval import harness, report
from pladis_eval.records import ImageRecord
from pladis_eval.settings import Setting, parse_setting, parse_settings, setting_of_record
from pladis_eval.stats import Z95, mean_ci, paired_difference


def test_mean_ci_matches_a_float64_recomputation():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=37)
    est = mean_ci(list(values))
    assert est.mean == pytest.approx(values.mean(), abs=1e-12)
    assert est.half_width == pytest.approx(1.959963984540054 * values.std(ddof=1) / math.sqrt(37), rel=1e-12)
    assert est.n == 37 and Z95 == pytest.approx(1.96, abs=1e-3)


def test_single_values_have_no_interval_and_empty_sets_are_refused():
    assert math.isnan(mean_ci([4.0]).half_width) and mean_ci([4.0]).format(1) == "4.0"
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])


def test_paired_difference_uses_only_shared_prompt_seed_pairs():
    on = {("a", 0): 5.0, ("a", 1): 7.0, ("b", 0): 4.0, ("c", 0): 100.0}
    off = {("a", 0): 4.0, ("a", 1): 5.0, ("b", 0): 4.0}
    est = paired_difference(on, off)
    assert est.n == 3 and est.mean == pytest.approx(1.0)
    assert est.half_width == pytest.approx(Z95 * np.std([1, 2, 0], ddof=1) / math.sqrt(3))
    with pytest.raises(ValueError, match="share no"):
        paired_difference({("x", 0): 1.0}, off)


def test_paired_interval_is_narrower_than_the_unpaired_one_for_correlated_images():
    rng = np.random.default_rng(0)
    prompt_effect = rng.normal(0, 5, size=50)
    off = {(str(i), 0): float(v) for i, v in enumerate(prompt_effect)}
    on = {k: v + 1.0 + float(rng.normal(0, 0.1)) for k, v in off.items()}
    paired = paired_difference(on, off)
    assert paired.mean == pytest.approx(1.0, abs=0.05) and paired.half_width < 0.1 < mean_ci(list(on.values())).half_width


def test_settings_parse_label_and_refuse_bad_input():
    s = parse_setting("cfg=5, pag=3 ,pladis=2")
    assert s == Setting(cfg=5.0, pag=3.0, pladis=2.0) and s.label == "cfg=5,pag=3,pladis=2"
    assert s.baseline() == Setting(cfg=5.0, pag=3.0) and s.slug == "cfg5_pag3_pladis2"
    assert parse_setting("cfg=5,pladis=2,alpha=2").label == "cfg=5,pladis=2,alpha=2"
    assert parse_setting("").label == "default" and parse_setting("default,pladis=2") == Setting(pladis=2.0)
    assert [x.label for x in parse_settings("cfg=5;cfg=5,pladis=2;;cfg=5")] == ["cfg=5", "cfg=5,pladis=2"]
    for text, message in [("cfg=five", "cfg must be a number"), ("lambda=2", "KEY in cfg, pag, seg, pladis, alpha"),
                          ("cfg=-1", "cfg must be a finite number >= 0"), ("alpha=3", r"alpha must be in \[1, 2\]"),
                          ("pag=1,seg=1", "pag and seg cannot be combined"), ("cfg=1,cfg=2", "cfg given twice"),
                          ("cfg=nan", "finite")]:
        with pytest.raises(ValueError, match=message):
            parse_setting(text)
    with pytest.raises(ValueError, match="at least one setting"):
        parse_settings(" ; ")


def test_setting_read_back_from_a_generate_sidecar():
    record = {"sampling": {"guidance_scale": 7.5}, "guidance": {"pag_scale": 3.0},
              "pladis": {"enabled": True, "scale": 2.0, "alpha": 2.0}}
    assert setting_of_record(record) == Setting(cfg=7.5, pag=3.0, pladis=2.0, alpha=2.0)
    off = {"sampling": {"guidance_scale": 1.0}, "guidance": {}, "pladis": {"enabled": False, "scale": 0.0, "alpha": 2.0}}
    assert setting_of_record(off) == Setting(cfg=1.0)
    assert setting_of_record({"setting": Setting(cfg=3.0, pladis=1.0).as_dict()}) == Setting(cfg=3.0, pladis=1.0)


def test_baselines_pair_pladis_with_its_guidance_and_cfg_rows_with_the_overall_baseline():
    rows = parse_settings("cfg=5;cfg=5,pladis=2;cfg=7.5;cfg=5,pag=3,pladis=2;cfg=5,pag=3")
    chosen = harness.choose_baselines(rows)
    assert {k.label: v.label if v else None for k, v in chosen.items()} == {
        "cfg=5": None, "cfg=5,pladis=2": "cfg=5", "cfg=7.5": "cfg=5",
        "cfg=5,pag=3,pladis=2": "cfg=5,pag=3", "cfg=5,pag=3": "cfg=5"}
    assert harness.choose_baselines(rows, parse_setting("cfg=7.5"))[rows[0]] == rows[2]
    with pytest.raises(ValueError, match="--baseline 'cfg=9' is not among the settings"):
        harness.choose_baselines(rows, parse_setting("cfg=9"))


def _table():
    base, on, cfg = Setting(cfg=5.0), Setting(cfg=5.0, pladis=2.0), Setting(cfg=7.5)
    values = {base: [1.0, 2.0, 3.0, 4.0], on: [2.0, 2.5, 4.0, 5.5], cfg: [1.5, 2.5, 3.0, 4.0]}
    records, scores = [], {"clipscore": {}}
    for setting, vals in values.items():
        for i, v in enumerate(vals):
            path = Path(f"/x/{setting.slug}/{i}.png")
            records.append(ImageRecord(path, f"p{i // 2}", i % 2, setting))
            scores["clipscore"][path] = v
    return harness.summarise(records, scores, order=[base, on, cfg], models={"clipscore": "tiny"}), values


def test_table_rows_hold_means_cis_and_paired_differences():
    table, values = _table()
    base, on, cfg = (row.setting for row in table.rows)
    row = table.rows[1]
    assert row.baseline == base and row.images == 4
    assert row.cells["clipscore"].value == mean_ci(values[on])
    assert row.cells["clipscore"].difference == mean_ci([b - a for a, b in zip(values[base], values[on], strict=True)])
    assert table.rows[0].cells["clipscore"].difference is None and table.rows[2].baseline == base


def test_markdown_is_the_papers_format():
    table, _ = _table()
    text = report.markdown(table).splitlines()
    assert text[0] == "| setting | images | vs | clipscore ↑ |"
    assert text[2] == "| cfg=5 | 4 | — | 2.50 ± 1.27 |"
    assert text[3] == "| cfg=5,pladis=2 | 4 | cfg=5 | 3.50 ± 1.55 (+1.00 ± 0.40) |"
    assert text[4] == "| cfg=7.5 | 4 | cfg=5 | 2.75 ± 1.02 (+0.25 ± 0.28) |"


def test_csv_json_and_plot_are_written(tmp_path):
    table, _ = _table()
    paths = report.write(table, tmp_path)
    assert [p.name for p in paths] == ["evaluation.md", "evaluation.csv", "evaluation.json", "evaluation.png"]
    rows = list(csv.DictReader(paths[1].open()))
    assert [r["setting"] for r in rows] == ["cfg=5", "cfg=5,pladis=2", "cfg=7.5"]
    assert float(rows[1]["diff_mean"]) == pytest.approx(1.0) and rows[1]["baseline"] == "cfg=5" and rows[0]["diff_mean"] == ""
    data = json.loads(paths[2].read_text())
    assert data["models"] == {"clipscore": "tiny"} and data["rows"][1]["diff_pairs"] == 4
    assert paths[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[3].stat().st_size > 5000


def test_set_metrics_need_a_reference():
    table_records = [ImageRecord(Path("/x/a.png"), "p", 0, Setting(cfg=1.0))]
    from pladis_eval.metrics import SetMetric

    with pytest.raises(ValueError, match="needs --reference DIR"):
        harness.summarise(table_records, {}, [SetMetric("fid", lambda a, b: 0.0)], [])
