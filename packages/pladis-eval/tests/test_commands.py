"""``pladis evaluate`` and ``pladis benchmark`` end to end on the embedded toy model (2 denoising steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from PIL import Image
from pladis_eval import plugin
from pladis_eval.__main__ import build_parser, main
from pladis_eval.generation import grid_jobs
from pladis_eval.settings import parse_settings

PROMPTS = ["a red circle", "two blue squares"]


def _run(argv):
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.run(args)


def test_plugin_registers_both_commands_through_the_hook():
    registered = []
    plugin.pladis_register_commands(lambda name, module: registered.append((name, module)))
    assert registered == [("evaluate", "pladis_eval.cli.evaluate"), ("benchmark", "pladis_eval.cli.benchmark")]
    entry = [e for e in metadata.entry_points(group="pladis.plugins") if e.value == "pladis_eval.plugin"]
    assert [e.name for e in entry] == ["eval"]
    import argparse

    for name, module in registered:  # the contract: HELP and add_parser(subparsers) adding `name`
        command = __import__(module, fromlist=["HELP"])
        subparsers = argparse.ArgumentParser().add_subparsers()
        command.add_parser(subparsers)
        assert command.HELP and list(subparsers.choices) == [name]
        assert subparsers.choices[name].get_default("run") is command.run


def test_command_modules_import_without_torch():
    code = ("import sys, pladis_eval.plugin, pladis_eval.cli.evaluate, pladis_eval.cli.benchmark; "
            "print(sorted(m for m in ('torch', 'transformers', 'torchmetrics', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def test_evaluate_scores_generate_folders_and_pairs_them(tmp_path, tiny_clip_dir):
    from pladis_eval.metrics import toy_scorer

    from pladis.cli import main as pladis_main

    scorer = toy_scorer()

    for name, scale in (("off", "0"), ("on", "2")):
        assert pladis_main(["generate", *PROMPTS, "--scale", scale, "--steps", "2", "--seed", "3",
                            "--out", str(tmp_path / name), "-q"]) == 0
    assert _run(["evaluate", "--images", str(tmp_path), "--metrics", "toy-alignment,clipscore",
                 "--metric-model", f"clipscore={tiny_clip_dir}", "--out", str(tmp_path / "table"), "-q"]) == 0
    rows = json.loads((tmp_path / "table" / "evaluation.json").read_text())["rows"]
    toy = {r["setting"]: r for r in rows if r["metric"] == "toy-alignment"}
    assert set(toy) == {"cfg=1", "cfg=1,pladis=2"} and toy["cfg=1,pladis=2"]["baseline"] == "cfg=1"

    def scores(folder):
        return [100 * scorer.score(np.asarray(Image.open(folder / f"{i:02d}-{slug}.png").convert("RGB")), p)["overall"]
                for i, (p, slug) in enumerate(zip(PROMPTS, ("a-red-circle", "two-blue-squares"), strict=True))]

    off, on = scores(tmp_path / "off"), scores(tmp_path / "on")
    assert toy["cfg=1"]["mean"] == pytest.approx(np.mean(off))
    assert toy["cfg=1,pladis=2"]["diff_mean"] == pytest.approx(np.mean(np.subtract(on, off)))
    assert toy["cfg=1,pladis=2"]["diff_pairs"] == 2
    assert {r["metric"] for r in rows} == {"toy-alignment", "clipscore"}


def test_benchmark_resumes_after_an_interruption_and_matches_generate(tmp_path, monkeypatch):
    from pladis.cli import _session
    from pladis.cli import main as pladis_main

    out = tmp_path / "bench"
    argv = ["benchmark", "--prompts", "toy", "--limit", "2", "--settings", "cfg=1;cfg=1,pladis=2", "--seeds", "0-1",
            "--steps", "2", "--out", str(out), "-q"]
    real, calls = _session.Session.generate, []

    def interrupted(self, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[:2])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_session.Session, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(argv)
    first = {p: (out / p).read_bytes() for p in _files(out)}
    assert len(first) == 3 and not (out / "evaluation.json").exists()
    monkeypatch.setattr(_session.Session, "generate", real)
    assert _run(argv) == 0

    toy = [line for line in (out / "shards" / "process-0-of-1.txt").read_text().splitlines()]
    grid = [job.name for job in grid_jobs(parse_settings("cfg=1;cfg=1,pladis=2"), ["p0", "p1"], [0, 1])]
    assert sorted(toy) == sorted(grid) and len(toy) == len(set(toy)) == 8  # each image generated once
    assert all((out / p).read_bytes() == data for p, data in first.items())  # kept, not redone
    rows = json.loads((out / "evaluation.json").read_text())["rows"]
    assert [(r["setting"], r["images"]) for r in rows] == [("cfg=1", 4), ("cfg=1,pladis=2", 4)]

    sidecar = json.loads((out / "images/cfg1_pladis2/00001-s1.json").read_text())
    assert sidecar["setting"]["pladis"] == 2.0 and sidecar["sampling"]["guidance_scale"] == 1.0
    assert pladis_main(["generate", sidecar["prompt"], "--scale", "2", "--guidance-scale", "1", "--steps", "2",
                        "--seed", "1", "--out", str(tmp_path / "gen"), "-q"]) == 0
    generated = next((tmp_path / "gen").glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(generated)), np.asarray(Image.open(out / "images/cfg1_pladis2/00001-s1.png")))


def test_benchmark_shards_over_two_processes_under_accelerate(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29517", "-m", "pladis_eval", "benchmark", "--prompts", "toy", "--limit", "2", "--settings",
               "cfg=1;cfg=1,pladis=2", "--seeds", "0-1", "--steps", "2", "--out", str(out), "-q"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    shards = {p.name: p.read_text().split() for p in (out / "shards").glob("*.txt")}
    assert sorted(shards) == ["process-0-of-2.txt", "process-1-of-2.txt"]
    grid = [job.name for job in grid_jobs(parse_settings("cfg=1;cfg=1,pladis=2"), ["p0", "p1"], [0, 1])]
    a, b = shards["process-0-of-2.txt"], shards["process-1-of-2.txt"]
    assert not set(a) & set(b) and sorted(a + b) == sorted(grid) and len(a) == len(b) == 4
    assert sorted(a) == sorted(grid[0::2])
    for name in b:
        assert json.loads((out / f"{name}.json").read_text())["shard"] == {"index": 1, "count": 2}
    assert result.stdout.count("| setting | images | vs |") == 1  # gathered and printed once
    assert json.loads((out / "evaluation.json").read_text())["rows"][1]["diff_pairs"] == 4


@pytest.mark.parametrize(("argv", "message"), [
    (["benchmark", "--guidance-scale", "5"], "--guidance-scale does not apply to benchmark: use cfg=W in --settings"),
    (["benchmark", "--scale", "2"], "--scale/--alpha do not apply to benchmark"),
    (["benchmark", "--settings", "cfg=x"], "setting 'cfg=x': cfg must be a number"),
    (["benchmark", "--model", "some/model"], "--prompts is required with --model"),
    (["benchmark", "--backbone", "sdxl-turbo"], "--prompts is required with --model / --backbone"),
    (["benchmark", "--metrics", "nope"], "unknown metric nope"),
    (["evaluate", "--images", "/nonexistent"], "is not a folder"),
    (["evaluate", "--images", ".", "--metrics", "fid"], "no image with a sidecar"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)] if argv[0] == "benchmark" else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pladis: error: ") and message in err[0]
    assert not (tmp_path / "images").exists()  # nothing generated


def test_fid_needs_a_reference(tmp_path, capsys):
    from pladis.cli import main as pladis_main

    assert pladis_main(["generate", "a red circle", "--steps", "1", "--out", str(tmp_path), "-q"]) == 0
    assert main(["evaluate", "--images", str(tmp_path), "--metrics", "fid"]) == 2
    assert "--metrics fid needs --reference DIR" in capsys.readouterr().err


def test_seeds_ranges():
    from pladis_eval.cli.benchmark import seeds_value

    assert seeds_value("0-4") == [0, 1, 2, 3, 4] and seeds_value("3,0-1,3") == [3, 0, 1]
    for bad in ("a", "4-2", "-1", ""):
        with pytest.raises(Exception, match="seed"):
            seeds_value(bad)


def test_benchmark_help_names_the_paper_style_settings():
    text = build_parser().format_help() + build_parser()._subparsers._group_actions[0].choices["benchmark"].format_help()
    assert "cfg=5;cfg=5,pladis=2;cfg=7.5;cfg=10" in text and "--seeds" in text




def test_the_pladis_front_end_has_both_commands_through_the_plugin_hook(capsys):
    from pladis.cli import main as pladis_main

    assert pladis_main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "evaluate" in text and "benchmark" in text
    assert pladis_main(["evaluate", "--images", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == "pladis: error: --images: '/nonexistent' is not a folder"


def test_evaluate_with_fid_against_a_reference_folder(tmp_path, monkeypatch):
    from pladis_eval import metrics

    from pladis.cli import main as pladis_main

    real_build = metrics.build

    class ChannelMeans(__import__("torch").nn.Module):
        def forward(self, images):
            return images.double().mean(dim=(2, 3))

    monkeypatch.setattr(metrics, "build", lambda name, **kw: metrics.fid_with_features(ChannelMeans())
                        if name == "fid" else real_build(name, **kw))
    for name, scale in (("off", "0"), ("on", "2")):
        assert pladis_main(["generate", *PROMPTS, "a green square", "--scale", scale, "--steps", "1",
                            "--out", str(tmp_path / "images" / name), "-q"]) == 0
    reference = tmp_path / "reference"
    reference.mkdir()
    for i, colour in enumerate([(10, 20, 30), (200, 100, 50), (90, 90, 200), (30, 160, 60)]):
        Image.new("RGB", (32, 32), colour).save(reference / f"{i}.png")  # another size: resized to 16 px
    assert main(["evaluate", "--images", str(tmp_path / "images"), "--metrics", "fid,toy-alignment",
                 "--reference", str(reference), "-q"]) == 0
    rows = {r["setting"]: r for r in json.loads((tmp_path / "images" / "evaluation.json").read_text())["rows"]
            if r["metric"] == "fid"}
    assert rows["cfg=1"]["mean"] > 0 and rows["cfg=1,pladis=2"]["diff_mean"] == pytest.approx(
        rows["cfg=1,pladis=2"]["mean"] - rows["cfg=1"]["mean"])
    assert rows["cfg=1"]["ci95"] is None  # one number per set: no interval


def test_evaluate_refuses_ambiguous_pairs(tmp_path, capsys):
    from pladis.cli import main as pladis_main

    for name in ("a", "b"):  # the same setting, prompt and seed twice
        assert pladis_main(["generate", "a red circle", "--steps", "1", "--out", str(tmp_path / name), "-q"]) == 0
    assert main(["evaluate", "--images", str(tmp_path), "--metrics", "toy-alignment"]) == 2
    assert "are both setting 'cfg=1,pladis=2', prompt 'a red circle', seed 0" in capsys.readouterr().err
