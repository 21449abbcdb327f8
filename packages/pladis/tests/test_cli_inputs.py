"""Defects found trying the CLI as a new user would: quiet output, bad inputs that must be one
``pladis: error:`` line with exit status 2 (and nothing written), honest sidecars and captions."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from pladis.cli import main
from pladis.cli._options import PladisSettings

TINY = ["--steps", "2", "--height", "32", "--width", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def sd15(tmp_path_factory) -> Path:
    from pladis_adapter_sd15 import tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "sd15"
    tiny_pipeline(0).save_pretrained(path)
    return path


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def run(*argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("pladis")]  # not the loading bars
    assert len(lines) == 1 and lines[0].startswith("pladis: error: ") and "Traceback" not in err, err
    return lines[0]


def test_quiet_prints_nothing_not_even_loading_bars_or_warnings(cli, sd15):
    code, out, err = cli("generate", "a cat", "--model", sd15, *TINY, "--out", "o", "-q")
    assert code == 0 and out == "" and err == ""


def test_the_loader_passes_dtype_not_the_deprecated_torch_dtype(cli, sd15):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("generate", "a cat", "--model", sd15, *TINY, "--out", "o")[0] == 0
    assert not [w for w in caught if "torch_dtype" in str(w.message)]


def _copy(sd15: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sd15, tmp_path / "copy"))


def _broken_index(model: Path) -> str:
    (model / "model_index.json").write_text("{not json", encoding="utf-8")
    return "model_index.json"


def _truncated_unet(model: Path) -> str:
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return "unet/diffusion_pytorch_model.safetensors' is truncated or damaged"


def _deleted_text_encoder(model: Path) -> str:
    for path in (model / "text_encoder").glob("model*"):
        path.unlink()
    return "text_encoder' has no weights file (CLIPTextModel needs"


@pytest.mark.parametrize("damage", [_broken_index, _truncated_unet, _deleted_text_encoder])
def test_a_damaged_model_folder_is_a_usage_error_naming_the_file(cli, sd15, tmp_path, damage):
    model = _copy(sd15, tmp_path)
    expected = damage(model)
    code, _, err = cli("generate", "x", "--model", model, *TINY, "--out", "o")
    assert code == 2 and expected in _one_error(err)
    assert not (tmp_path / "o").exists()


def test_an_unwritable_out_is_refused_before_loading_and_leaves_no_folder(cli, tmp_path, monkeypatch):
    import pladis.cli._session as session

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(session, "_load_pipe", never)
    (tmp_path / "file.txt").write_text("x")
    code, _, err = cli("compare", "x", "--out", "file.txt/sub/out")
    assert code == 2 and "'file.txt' is a file, not a folder" in _one_error(err).replace(str(tmp_path) + "/", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "x", "--seed", "99999999999999999999999"], "argument --seed: seeds are in [0, 2**64 - 1]"),
    (["generate", "x", "--steps", "100000000000"], "argument --steps: must be in [1, 10000]"),
    (["sweep", "x", "--scales", "1,,2"], "argument --scales: expected a comma-separated list of numbers"),
    (["sweep", "x", "--alphas", ""], "argument --alphas: expected a comma-separated list of numbers"),
    (["maps", "x", "--tokens", ""], "--tokens needs comma-separated prompt words"),
    (["maps", "x", "--tokens", "circle,,square"], "--tokens needs comma-separated prompt words"),
])
def test_bad_values_are_one_usage_line(cli, argv, message):
    code, _, err = cli(*argv, "--out", "o")
    assert code == 2 and message in _one_error(err)


@pytest.mark.parametrize(("argv", "message"), [
    (["--call-arg", "eta=abc"], "--call-arg eta=\"abc\": StableDiffusionPipeline expects a number for 'eta'"),
    (["--call-arg", "return_dict=3"], "expects true or false for 'return_dict'"),
    (["--steps", "5000"], "Scheduler has 1000 training timesteps; use --steps in [1, 1000]"),
])
def test_call_values_the_pipeline_cannot_take_are_usage_errors(cli, sd15, tmp_path, argv, message):
    code, _, err = cli("generate", "x", "--model", sd15, *TINY[2:], *argv, "--out", "o")
    assert code == 2 and message in _one_error(err)
    assert not (tmp_path / "o").exists()


def test_backbone_without_model_says_what_the_default_is(cli, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, _, err = cli("generate", "x", "--backbone", "sdxl", "--out", "o", "--load-arg", "local_files_only=true")
    line = _one_error(err)
    assert code == 1 and "--backbone sdxl without --model loads stabilityai/" in line
    assert "pass --model ID_OR_DIR, or drop --backbone to use the embedded toy model" in line
    assert "stacktrace above" not in line


def test_no_preset_and_preset_default_record_what_they_ran(cli, tmp_path):
    assert cli("generate", "a red circle", "--out", "a", "-q")[0] == 0
    assert cli("generate", "a red circle", "--out", "b", "--preset", "default", "-q")[0] == 0
    own, preset = (json.loads((tmp_path / d / "00-a-red-circle.json").read_text()) for d in ("a", "b"))
    assert own["model"]["preset"] is None and own["sampling"]["num_inference_steps"] == 20
    assert preset["model"]["preset"] == "default" and preset["sampling"]["num_inference_steps"] == 50
    assert own["sampling"]["guidance_scale"] != preset["sampling"]["guidance_scale"]


def test_a_prompt_the_tokenizer_cuts_is_recorded(cli, sd15, tmp_path):
    long = " ".join(["red circle"] * 60)
    code, _, err = cli("generate", long, "short", "--model", sd15, *TINY, "--out", "o")
    assert code == 0 and "tokens; the tokenizer keeps the first 77 (recorded in the sidecar)" in err
    cut, whole = (json.loads(p.read_text()) for p in sorted((tmp_path / "o").glob("*.json")))
    assert cut["prompt_truncated"]["limit"] == 77 and cut["prompt_truncated"]["tokens"] > 77
    assert whole["prompt_truncated"] is None


def test_the_caption_names_layers_window_and_temperature():
    assert PladisSettings(scale=2, alpha=1.5).label() == "PLADIS lambda=2 alpha=1.5"
    label = PladisSettings(scale=2, alpha=1.5, temperature=2.0, layers=["mid", "up"], start=0.0, end=0.5).label()
    assert label == "PLADIS lambda=2 alpha=1.5 T=2 layers=mid,up window=0-0.5"


@pytest.mark.parametrize("alpha", ["1.005", "2.5", "0.9"])
def test_an_alpha_the_library_refuses_is_a_usage_error_before_loading(cli, alpha):
    code, out, err = cli("generate", "a cat", "--alpha", alpha, "--out", "o")
    assert code == 2 and "--alpha" in _one_error(err) and "1 (softmax) or in [1.01, 2]" in err
    assert not Path("o").exists()
