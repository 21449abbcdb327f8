"""``pladis export-onnx`` and ``pladis generate --onnx``: one export of a tiny SD1.5 pipeline saved with
``save_pretrained``, run at λ = 0 and λ = 2 in ONNX Runtime (CPU) against ``pladis generate --model DIR``
(same seed): files, sidecars, image parity, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pladis.cli import main

pytest.importorskip("pladis_onnx")

TINY = ["--steps", "2", "--height", "32", "--width", "32"]
INSTALL = 'pip install "pladis[onnx]"'


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from pladis_adapter_sd15 import tiny_pipeline

    path = tmp_path_factory.mktemp("model") / "sd15"
    tiny_pipeline(0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def export(model, tmp_path_factory) -> Path:
    """``pladis export-onnx --model DIR --out …``, once for the module."""
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export-onnx", "--model", str(model), "--out", str(out), "-q"]) == 0
    return out


def _run(capsys, *argv: object) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.startswith("pladis")]


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def test_export_onnx_writes_a_runnable_export(export, model):
    names = {p.name for p in export.iterdir()}
    assert {"denoiser.onnx", "text_encoder.onnx", "vae_decoder.onnx", "tokenizer", "scheduler",
            "pladis_onnx.json"} <= names
    meta = json.loads((export / "pladis_onnx.json").read_text())
    assert (meta["backbone"], meta["alpha"], meta["opset"], meta["fp16"], meta["static_scale"]) == (
        "sd15", 1.5, 17, False, None)
    cli = meta["cli"]
    assert cli["source"] == str(model) and cli["embedded"] is False and cli["pladis_layers"] == 4
    assert cli["adapter"]["distribution"] == "pladis-adapter-sd15" and cli["timings"]["export_s"] > 0
    assert cli["versions"]["onnxruntime"] and cli["argv"][0] == "export-onnx"


@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_generate_onnx_matches_pytorch_generate(export, model, tmp_path, monkeypatch, capsys, lam):
    monkeypatch.chdir(tmp_path)
    code, out, errors = _run(capsys, "generate", "a red circle", "--onnx", export, "--scale", lam, "--seed", 5,
                             *TINY, "--out", "ort")
    assert code == 0, errors
    assert sorted(p.name for p in (tmp_path / "ort").iterdir()) == ["00-a-red-circle.json", "00-a-red-circle.png"]
    assert "wrote ort/00-a-red-circle.png" in out
    code, _, errors = _run(capsys, "generate", "a red circle", "--model", model, "--scale", lam, "--seed", 5,
                           *TINY, "--device", "cpu", "--out", "pt", "-q")
    assert code == 0, errors
    ort_png, pt_png = tmp_path / "ort/00-a-red-circle.png", tmp_path / "pt/00-a-red-circle.png"
    meta, ref = _sidecar(ort_png), _sidecar(pt_png)
    assert meta["onnx"]["provider"] == "CPUExecutionProvider" and meta["onnx"]["requested_provider"] == "auto"
    assert meta["onnx"]["dir"] == str(export) and meta["onnx"]["versions"]["onnxruntime"]
    assert meta["pladis"] == ref["pladis"] and meta["pladis"]["scale"] == lam
    assert meta["pladis"]["enabled"] is (lam != 0) and meta["pladis_layers"] == ref["pladis_layers"]
    for key in ("prompt", "seed", "sampling", "image_size", "device", "dtype", "command"):
        assert meta[key] == ref[key], key
    assert meta["model"] == {**ref["model"], "source": str(model)}
    assert meta["timings"]["generate_s"] > 0 and meta["timings"]["load_s"] > 0
    assert {"python", "pladis", "torch", "diffusers"} <= set(meta["versions"])
    got = np.asarray(Image.open(ort_png), dtype=np.float64) / 255
    want = np.asarray(Image.open(pt_png), dtype=np.float64) / 255
    assert got.shape == want.shape == (32, 32, 3)
    assert np.abs(got - want).mean() <= 1 / 255


def test_static_scale_export_defaults_to_its_lambda(model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "export-onnx", "--model", model, "--out", "static", "--static-scale", "1", "-q")[0] == 0
    code, _, errors = _run(capsys, "generate", "x", "--onnx", "static", *TINY, "--out", "g", "-q")
    assert code == 0, errors
    assert _sidecar(tmp_path / "g/00-x.png")["pladis"]["scale"] == 1.0
    code, _, errors = _run(capsys, "generate", "x", "--onnx", "static", "--scale", "2", "--out", "bad")
    assert code == 2 and errors == [errors[0]] and "λ = 1 baked in" in errors[0]


def _without(export: Path, tmp_path: Path, name: str) -> Path:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in export.iterdir():
        if item.name != name:
            (broken / item.name).symlink_to(item)
    return broken


ERRORS = [
    # (arguments, exit status, message fragment); {export} / {model} / {broken} are filled in
    (["generate", "x", "--onnx", "{broken}"], 1, "missing component(s): vae_decoder.onnx"),
    (["export-onnx", "--model", "{model}", "--out", "o", "--opset", "9"], 2, "opset 9 is too old"),
    (["generate", "x", "--onnx", "{export}", "--alpha", "2"], 2, "alpha = 1.5 fixed at export"),
    (["generate", "x", "--onnx", "{export}", "--model", "{model}"], 2, "--model is not available with --onnx"),
    (["generate", "x", "--onnx", "{export}", "--backend", "eager"], 2, "--backend is not available with --onnx"),
    (["generate", "x", "--onnx", "{export}", "--seg-layers", "up"], 2, "--seg-layers is not available with --onnx"),
    (["generate", "x", "--onnx", "{export}", "--call-arg", "eta=1"], 2, "--call-arg eta is not supported"),
    (["export-onnx", "--variant", "fp16", "--out", "o"], 2, "--variant and --load-arg apply to a --model or --backbone"),
    (["generate", "x", "--provider", "cpu"], 2, "--provider selects the ONNX Runtime provider; it needs --onnx"),
    (["generate", "x", "--onnx", "nowhere"], 2, "--onnx folder 'nowhere' does not exist"),
]


@pytest.mark.parametrize(("argv", "code", "message"), ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_errors_are_one_line(export, model, tmp_path, monkeypatch, capsys, argv, code, message):
    monkeypatch.chdir(tmp_path)
    paths = {"export": export, "model": model}
    if "{broken}" in argv:
        paths["broken"] = _without(export, tmp_path, "vae_decoder.onnx")
    got, _, errors = _run(capsys, *(a.format(**paths) if a.startswith("{") else a for a in argv))
    assert got == code
    assert len(errors) == 1 and errors[0].startswith("pladis: error: ") and message in errors[0], errors
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "o").exists()


def test_cuda_provider_absent_is_one_line(export, tmp_path, monkeypatch, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime without the CUDA execution provider")
    monkeypatch.chdir(tmp_path)
    code, _, errors = _run(capsys, "generate", "x", "--onnx", export, "--provider", "cuda")
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith("pladis: error: provider 'cuda' requested") and "CUDAExecutionProvider" in errors[0]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("argv", [["generate", "x", "--onnx", "somewhere"], ["export-onnx", "--out", "o"]])
def test_without_pladis_onnx_its_command_and_option_name_the_extra(tmp_path, monkeypatch, capsys, argv):
    """pladis-onnx absent (no plugin registers them): the core has no export-onnx and no --onnx, and a
    usage error says what to install."""
    from pladis.cli import _commands
    from pladis_registry import make_plugin_manager

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_commands, "plugin_manager", lambda: make_plugin_manager(autoload=False, plugins=[_commands]))
    (tmp_path / "somewhere").mkdir()
    code, _, errors = _run(capsys, *argv)
    assert code == 2 and len(errors) == 1 and INSTALL in errors[0], errors
    assert not (tmp_path / "o").exists()


def test_the_core_cli_never_imports_pladis_onnx():
    """pladis-onnx depends on pladis, not the other way round: its CLI parts come through the plugin hooks."""
    import re
    from pathlib import Path

    import pladis

    sources = Path(pladis.__file__).parent.rglob("*.py")
    assert not [str(p) for p in sources if re.search(r"^\s*(import|from) pladis_onnx", p.read_text(), re.M)]


def test_fp16_export_runs_on_the_cpu_provider(model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "export-onnx", "--model", model, "--out", "half", "--fp16", "-q")[0] == 0
    code, _, errors = _run(capsys, "generate", "x", "--onnx", "half", *TINY, "--out", "g", "-q")
    assert code == 0, errors
    meta = _sidecar(tmp_path / "g/00-x.png")
    assert meta["dtype"] == "fp16" and meta["onnx"]["fp16"] is True
    assert meta["onnx"]["provider"] == "CPUExecutionProvider"
    assert _run(capsys, "generate", "x", "--model", model, *TINY, "--device", "cpu", "--out", "pt", "-q")[0] == 0
    got = np.asarray(Image.open(tmp_path / "g/00-x.png"), dtype=np.float64) / 255
    want = np.asarray(Image.open(tmp_path / "pt/00-x.png"), dtype=np.float64) / 255
    assert np.abs(got - want).mean() <= 2 / 255  # fp16 weights: a looser bound than fp32's 1/255


def test_a_preset_asked_for_on_the_toy_export_keeps_its_own_settings(tmp_path, monkeypatch, capsys):
    """As on the PyTorch path: the toy model's recorded defaults (no CFG) yield to a --preset asked for."""
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "export-onnx", "--out", "toy", "-q")[0] == 0
    assert _run(capsys, "generate", "x", "--onnx", "toy", "--out", "own")[0] == 0
    assert _run(capsys, "generate", "x", "--onnx", "toy", "--preset", "fast", "--out", "fast")[0] == 0
    own, fast = _sidecar(tmp_path / "own" / "00-x.png"), _sidecar(tmp_path / "fast" / "00-x.png")
    assert own["sampling"]["guidance_scale"] == 1.0
    assert (fast["sampling"]["guidance_scale"], fast["sampling"]["num_inference_steps"]) == (7.5, 20)
    # a preset chosen at export time holds as well
    assert _run(capsys, "export-onnx", "--preset", "fast", "--out", "toyfast", "-q")[0] == 0
    assert _run(capsys, "generate", "x", "--onnx", "toyfast", "--out", "fast2")[0] == 0
    assert _sidecar(tmp_path / "fast2" / "00-x.png")["sampling"]["guidance_scale"] == 7.5


def test_onnx_on_a_folder_that_is_not_an_export_is_a_usage_error(model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, errors = _run(capsys, "generate", "x", "--onnx", model, "--out", "o")
    assert code == 2 and len(errors) == 1
    assert "is not a pladis export-onnx folder: it has no pladis_onnx.json" in errors[0]
    assert not (tmp_path / "o").exists()
