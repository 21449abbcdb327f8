"""The ``pladis`` command line end to end, on tiny pipelines saved with ``save_pretrained`` and loaded
back through ``--model DIR`` (the real loading path), run in a temp dir: produced files, grids, sidecars,
exit statuses and error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pladis.cli import main

TINY = ["--steps", "2", "--height", "32", "--width", "32", "--device", "cpu"]
SANA_CALL = ["--call-arg", "use_resolution_binning=false", "--call-arg", "complex_human_instruction=null",
             "--call-arg", "max_sequence_length=32"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny sd15 / sdxl / sana pipelines written with ``save_pretrained``."""
    from pladis_adapter_sana import tiny_pipeline as sana
    from pladis_adapter_sd15 import tiny_pipeline as sd15
    from pladis_adapter_sdxl import tiny_pipeline as sdxl

    root = tmp_path_factory.mktemp("models")
    for name, factory in {"sd15": sd15, "sdxl": sdxl, "sana": sana}.items():
        factory(0).save_pretrained(root / name)
    return {name: root / name for name in ("sd15", "sdxl", "sana")}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("pladis")]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``pladis ARGS…`` in-process, in a temp dir; return status and captured output."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def load_calls(monkeypatch) -> list[str]:
    """Names of the pipeline classes loaded with ``from_pretrained`` during the test."""
    import diffusers

    calls: list[str] = []
    original = diffusers.DiffusionPipeline.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", classmethod(counting))
    return calls


def sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def cell(grid: Image.Image, layout: dict, index: int) -> np.ndarray:
    return np.asarray(grid.crop(tuple(layout["boxes"][index])))


def upscaled(image_path: Path, layout: dict) -> np.ndarray:
    image = Image.open(image_path).convert("RGB")
    return np.asarray(image.resize(tuple(layout["cell"]), Image.Resampling.NEAREST))


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("generate", "compare", "sweep", "maps", "plugins"):
        assert command in result.out
    assert cli("sweep", "--help").code == 0


def test_generate_sd15_folder_prompts_from_args_and_file(cli, models, tmp_path, load_calls):
    (tmp_path / "prompts.txt").write_text("# comment\na blue square\n\na green star\n")
    result = cli("generate", "a red circle", "-f", "prompts.txt", "--model", models["sd15"], *TINY,
                 "--scale", "1.5", "--alpha", "2", "--seed", "7", "--out", "gen")
    assert result.code == 0, result.err
    assert load_calls == ["StableDiffusionPipeline"]  # loaded once for the three prompts
    files = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert files == ["00-a-red-circle.json", "00-a-red-circle.png", "01-a-blue-square.json",
                     "01-a-blue-square.png", "02-a-green-star.json", "02-a-green-star.png"]
    assert "wrote gen/00-a-red-circle.png" in result.out
    image = Image.open(tmp_path / "gen/01-a-blue-square.png")
    assert image.size == (32, 32)
    meta = sidecar(tmp_path / "gen/01-a-blue-square.png")
    assert meta["prompt"] == "a blue square" and meta["seed"] == 7 and meta["command"] == "generate"
    assert meta["pladis"] == {"enabled": True, "scale": 1.5, "alpha": 2.0, "temperature": 1.0, "layers": "all",
                              "start": 0.0, "end": 1.0}
    assert meta["pladis_layers"] == 4  # cross-attention of the tiny UNet: 1 down, 1 mid, 2 up
    assert meta["model"]["backbone"] == "sd15" and meta["model"]["source"] == str(models["sd15"])
    assert meta["model"]["adapter"]["distribution"] == "pladis-adapter-sd15"
    assert meta["model"]["pipeline_class"] == "StableDiffusionPipeline" and meta["model"]["preset"] == "default"
    assert meta["sampling"]["num_inference_steps"] == 2 and meta["sampling"]["guidance_scale"] == 7.5
    assert (meta["sampling"]["height"], meta["sampling"]["width"]) == (32, 32)
    assert meta["device"] == "cpu" and meta["dtype"] == "fp32" and meta["image_size"] == [32, 32]
    assert {"python", "pladis", "torch", "diffusers", "transformers"} <= set(meta["versions"])
    assert meta["timings"]["generate_s"] > 0 and meta["timings"]["load_s"] > 0
    assert meta["argv"][0] == "generate"


def test_compare_sdxl_folder_writes_captioned_side_by_side_grid(cli, models, tmp_path):
    result = cli("compare", "a red circle left of a blue square", "--model", models["sdxl"], *TINY, "--out", "cmp")
    assert result.code == 0, result.err
    stem = tmp_path / "cmp/00-a-red-circle-left-of-a-blue-square"
    baseline, boosted, compare = (Path(f"{stem}-{kind}.png") for kind in ("baseline", "pladis", "compare"))
    for path in (baseline, boosted, compare):
        assert path.is_file() and path.with_suffix(".json").is_file()
    meta = sidecar(compare)
    layout = meta["grid"]
    grid = Image.open(compare)
    assert (layout["rows"], layout["cols"]) == (1, 2)
    assert list(grid.size) == layout["size"] == meta["image_size"]
    assert layout["cell"] == [32 * layout["scale"]] * 2 and layout["cell"][0] >= 192
    # the cells are the two images, side by side, at the same seed
    assert np.array_equal(cell(grid, layout, 0), upscaled(baseline, layout))
    assert np.array_equal(cell(grid, layout, 1), upscaled(boosted, layout))
    assert not np.array_equal(np.asarray(Image.open(baseline)), np.asarray(Image.open(boosted)))
    assert sidecar(baseline)["seed"] == sidecar(boosted)["seed"] == 0
    assert sidecar(baseline)["pladis"]["enabled"] is False and sidecar(boosted)["pladis"]["scale"] == 2.0
    assert sidecar(baseline)["pladis_layers"] == 0 and sidecar(boosted)["pladis_layers"] == sidecar(compare)["pladis_layers"] > 0
    assert [c["pladis"]["enabled"] for c in meta["cells"]] == [False, True]
    # captions: ink above the cells (prompt, column labels) and below them (settings)
    pixels = np.asarray(grid.convert("L"))
    top, bottom = layout["boxes"][0][1], layout["boxes"][0][3]
    assert pixels[:top].min() < 128 and pixels[bottom:].min() < 160
    assert meta["model"]["backbone"] == "sdxl" and meta["pladis_layers"] > 0


def test_sweep_sana_folder_grid_over_lambda_and_alpha(cli, models, tmp_path, load_calls):
    result = cli("sweep", "a red circle", "a blue square", "--model", models["sana"], *TINY, *SANA_CALL,
                 "--scales", "0,1,2.5", "--alphas", "1.5,2", "--out", "sw", "--save-cells")
    assert result.code == 0, result.err
    assert load_calls == ["SanaPipeline"]
    grid_path = tmp_path / "sw/00-a-red-circle-sweep.png"
    meta = sidecar(grid_path)
    layout, grid = meta["grid"], Image.open(grid_path)
    assert (layout["rows"], layout["cols"]) == (2, 3) and list(grid.size) == layout["size"]
    assert [(c["row"], c["col"], c["pladis"]["alpha"], c["pladis"]["scale"]) for c in meta["cells"]] == [
        (0, 0, 1.5, 0.0), (0, 1, 1.5, 1.0), (0, 2, 1.5, 2.5), (1, 0, 2.0, 0.0), (1, 1, 2.0, 1.0), (1, 2, 2.0, 2.5)]
    assert meta["scales"] == [0.0, 1.0, 2.5] and meta["alphas"] == [1.5, 2.0]
    # the λ = 0 column is one shared baseline; α matters for λ ≠ 0
    assert np.array_equal(cell(grid, layout, 0), cell(grid, layout, 3))
    assert not np.array_equal(cell(grid, layout, 2), cell(grid, layout, 5))
    assert np.array_equal(cell(grid, layout, 4), upscaled(tmp_path / "sw/00-a-red-circle-a2-l1.png", layout))
    assert sidecar(tmp_path / "sw/00-a-red-circle-a2-l1.png")["pladis"]["alpha"] == 2.0
    assert (tmp_path / "sw/01-a-blue-square-sweep.json").is_file()
    assert meta["model"]["backbone"] == "sana" and meta["sampling"]["max_sequence_length"] == 32


def test_pag_loads_the_pag_pipeline(cli, models, tmp_path, load_calls):
    result = cli("generate", "a red circle", "--model", models["sd15"], *TINY, "--pag-scale", "2", "--out", "pag")
    assert result.code == 0, result.err
    meta = sidecar(tmp_path / "pag/00-a-red-circle.png")
    assert load_calls == ["StableDiffusionPAGPipeline"]
    assert meta["model"]["pipeline_class"] == "StableDiffusionPAGPipeline"
    assert meta["guidance"] == {"pag_scale": 2.0} and meta["sampling"]["pag_scale"] == 2.0


def test_seg_uses_the_seg_pipeline(cli, models, tmp_path):
    result = cli("compare", "a red circle", "--model", models["sdxl"], *TINY, "--seg-scale", "3",
                 "--seg-blur-sigma", "10", "--out", "seg")
    assert result.code == 0, result.err
    meta = sidecar(tmp_path / "seg/00-a-red-circle-compare.png")
    assert meta["model"]["pipeline_class"] == "StableDiffusionXLSEGPipeline"
    assert meta["guidance"] == {"seg_scale": 3.0, "seg_layers": "mid", "seg_blur_sigma": 10.0}


def test_readme_main_command_runs_on_the_embedded_default(cli, tmp_path):
    result = cli("compare", "a red circle left of a blue square", "--out", "outputs/demo")  # the README's
    assert result.code == 0, result.err
    compare = tmp_path / "outputs/demo/00-a-red-circle-left-of-a-blue-square-compare.png"
    meta = sidecar(compare)
    assert meta["model"]["embedded"] is True and meta["model"]["source"] == "embedded:toy"
    assert meta["model"]["backbone"] == "sd15" and "toy model" in meta["model"]["embedded_description"]
    assert meta["image_size"] == list(Image.open(compare).size)
    assert Image.open(str(compare).replace("compare", "pladis")).size == (16, 16)


def test_embedded_default_missing_is_one_clear_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PLADIS_TOY_MODEL", str(tmp_path / "nowhere"))
    result = cli("generate", "a red circle", "--out", "x")
    assert result.code != 0
    assert result.err.strip().startswith("pladis: error: the embedded toy model is not at")
    assert "Traceback" not in result.err


def test_plugins_lists_distributions_versions_and_backbones(cli):
    result = cli("plugins")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["DISTRIBUTION", "VERSION", "BACKBONES"]
    assert any(line.split() == ["pladis-adapter-sd15", "0.1.0", "sd15"] for line in lines)
    listed = json.loads(cli("plugins", "--json").out)
    by_dist = {p["distribution"]: p for p in listed}
    assert [b["name"] for b in by_dist["pladis-adapter-sdxl"]["backbones"]] == ["sdxl"]
    assert by_dist["pladis-adapter-sd15"]["backbones"][0]["default_preset"] == "default"
    assert "preset fast: DPM-Solver++" in cli("plugins", "-v").out


def _missing_weights(models: dict[str, Path], tmp_path: Path) -> Path:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["sd15"], broken)
    for weights in (broken / "unet").glob("diffusion_pytorch_model*"):
        weights.unlink()
    return broken


def _no_index(models: dict[str, Path], tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


ERRORS = [
    # (arguments, exit status, message fragment)
    (["generate", "x", "--backbone", "nope"], 2, "unknown backbone 'nope'; choose one of ["),
    (["generate", "x", "--model", "no/such/folder"], 2, "model folder 'no/such/folder' does not exist"),
    (["generate", "x", "--model", "{missing_weights}"], 2, "/unet' has no weights file (UNet2DConditionModel needs"),
    (["generate", "x", "--model", "{no_index}"], 2, "is not a diffusers pipeline folder: it has no model_index.json"),
    (["generate", "-f", "nope.txt"], 2, "cannot read prompt file 'nope.txt': No such file or directory"),
    (["generate", "x", "--model", "{sd15}", "--preset", "turbo"], 2,
     "unknown preset 'turbo' for backbone 'sd15'; choose one of ['default', 'fast']"),
    (["generate", "x", "--model", "{sd15}", "--backbone", "sdxl"], 2,
     "backbone 'sdxl' does not serve StableDiffusionPipeline"),
    (["generate", "x", "--model", "{sd15}", "--pag-scale", "1", "--seg-scale", "1"], 2, "cannot be combined"),
    (["generate", "x", "--model", "{sana}", "--seg-scale", "1"], 2, "--seg-scale supports SD 1.x/2.x and SDXL"),
    (["generate", "x", "--model", "{sd15}", "--layers", "middle", *TINY], 2, "unknown layer group 'middle'"),
    (["generate", "x", "--start", "0.8", "--end", "0.2"], 2, "--start (0.8) must not exceed --end (0.2)"),
    (["compare", "x", "--scale", "0"], 2, "compare needs --scale different from 0"),
    (["generate"], 2, "give at least one PROMPT or --prompt-file FILE"),
    # accepted and ignored before
    (["generate", "x", "--call-arg", "foo=1"], 2, "--call-arg foo: StableDiffusionPipeline takes no argument 'foo'"),
    (["generate", "x", "--seg-layers", "up"], 2, "--seg-layers and --seg-blur-sigma set up SEG: they need --seg-scale"),
    (["generate", "x", "--seg-blur-sigma", "2"], 2, "they need --seg-scale"),
    (["generate", "x", "--variant", "fp16"], 2, "--variant and --load-arg apply to a --model or --backbone load"),
    (["generate", "x", "--load-arg", "weights=w.safetensors"], 2, "not to the default toy model"),
]


@pytest.mark.parametrize(("argv", "code", "message"), ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_errors_print_one_line_and_exit_non_zero(cli, models, tmp_path, argv, code, message):
    paths = {"missing_weights": _missing_weights(models, tmp_path) if "{missing_weights}" in argv else None,
             "no_index": _no_index(models, tmp_path) if "{no_index}" in argv else None, **models}
    argv = [arg.format(**paths) if arg.startswith("{") else arg for arg in argv]
    result = cli(*argv)
    assert result.code == code
    assert len(result.error_lines) == 1, result.err
    assert result.error_lines[0].startswith("pladis: error: ") and message in result.error_lines[0]
    assert "Traceback" not in result.err and not (tmp_path / "outputs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent(cli, models):
    result = cli("generate", "x", "--model", models["sd15"], "--device", "cuda")
    assert result.code == 1
    assert result.error_lines == [result.error_lines[0]]
    assert result.error_lines[0].startswith("pladis: error: --device cuda was requested but CUDA is not available")


@pytest.mark.parametrize("argv", [["generate", "x", "--alpha", "3"], ["generate", "x", "--height", "30"],
                                  ["generate", "x", "--backend", "cuda"], ["frobnicate"], []])
def test_usage_errors_are_argparse_status_2_on_one_line(cli, argv):
    result = cli(*argv)
    assert result.code == 2 and result.out == ""
    assert len(result.err.splitlines()) == 1, result.err  # argparse printed 14 usage lines before
    assert result.err.startswith("pladis: error: ") and "--help`)" in result.err


@pytest.mark.parametrize("command", ["generate", "export-onnx"])
def test_temperature_outside_its_range_is_a_usage_error_naming_it(cli, command):
    result = cli(command, *(["x"] if command == "generate" else []), "--temperature", "1e30")
    assert result.code == 2 and "temperature must be in [1e-06, 1e+06]; got 1e30" in result.err


def test_python_m_pladis_cli_exit_status_and_stderr(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "pladis.cli", "generate", "x", "--backbone", "nope"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("pladis: error: unknown backbone 'nope'")
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_backend_option_is_passed_to_apply(cli, models, monkeypatch):
    import pladis
    from pladis.cli import _options
    from pladis.kernels import backends

    assert _options.BACKEND_CHOICES == backends.BACKENDS  # the CLI's copy, kept free of torch imports
    seen = []
    real = pladis.apply
    monkeypatch.setattr(pladis, "apply", lambda *args, **kwargs: seen.append(kwargs["backend"]) or real(*args, **kwargs))
    for backend in ("eager", None):
        extra = ["--backend", backend] if backend else []
        result = cli("generate", "x", "--model", models["sd15"], *TINY, *extra, "--out", "gen")
        assert result.code == 0, result.err
    assert seen == ["eager", "auto"]


def test_preset_picks_the_distilled_weights_it_samples_with(cli, models, tmp_path, monkeypatch):
    """``--preset 1step`` of a distilled backbone loads the 1-step weights (it loaded the default 4-step
    UNet and sampled it with the 1-step settings); a --load-arg that picks other weights is refused."""
    from safetensors.torch import save_file

    import pladis_registry.kit.distilled as distilled
    from pladis_adapter_sdxl import tiny_pipeline

    weights = tmp_path / "weights"
    weights.mkdir()
    state = {k: v.contiguous() for k, v in tiny_pipeline(0).unet.state_dict().items()}
    for name in ("sdxl_lightning_1step_unet_x0.safetensors", "sdxl_lightning_4step_unet.safetensors"):
        save_file(state, weights / name)
    loaded = []
    real = distilled.load_unet_checkpoint
    monkeypatch.setattr(distilled, "load_unet_checkpoint", lambda pipe, path: loaded.append(Path(path).name) or real(pipe, path))
    model = ["--model", models["sdxl"], "--backbone", "sdxl-lightning", "--load-arg", f"weights={weights}"]
    common = ["generate", "x", *model, "--height", "32", "--width", "32", "--out", "lw"]
    result = cli(*common, "--preset", "1step")
    assert result.code == 0, result.err
    assert loaded == ["sdxl_lightning_1step_unet_x0.safetensors"]
    meta = sidecar(tmp_path / "lw" / "00-x.png")
    assert meta["model"]["preset"] == "1step" and meta["sampling"]["num_inference_steps"] == 1
    result = cli(*common, "--preset", "1step", "--load-arg", "steps=4")
    assert result.code == 2 and "--preset 1step does not match the 4step weights" in result.err
    loaded.clear()  # export-onnx loads the same way, and records the preset it loaded
    result = cli("export-onnx", *model, "--preset", "1step", "--out", "onnx")
    assert result.code == 0, result.err
    assert loaded == ["sdxl_lightning_1step_unet_x0.safetensors"]
    assert json.loads((tmp_path / "onnx" / "pladis_onnx.json").read_text())["preset"] == "1step"


def test_a_preset_asked_for_on_the_default_model_keeps_its_own_settings(cli, tmp_path):
    """The embedded toy model's defaults (no CFG) apply unless a preset is asked for, whose steps and CFG
    then hold (they were overwritten, leaving only the preset's scheduler)."""
    assert cli("generate", "x", "--out", "own").code == 0
    own = sidecar(tmp_path / "own" / "00-x.png")
    assert own["sampling"]["guidance_scale"] == 1.0 and own["model"]["scheduler"] == "DDIMScheduler"
    assert cli("generate", "x", "--preset", "fast", "--out", "fast").code == 0
    fast = sidecar(tmp_path / "fast" / "00-x.png")
    assert fast["model"]["preset"] == "fast" and fast["model"]["scheduler"] == "DPMSolverMultistepScheduler"
    assert (fast["sampling"]["guidance_scale"], fast["sampling"]["num_inference_steps"]) == (7.5, 20)
    assert fast["sampling"]["height"] == own["sampling"]["height"] == 16


def test_a_weights_only_hub_repo_goes_to_the_adapter_whose_id_it_matches(monkeypatch):
    """ByteDance/SDXL-Lightning has no model_index.json: it named no pipeline class and failed; its
    adapter's loader takes that repo id. A repo matching no adapter still fails with the reason."""
    import diffusers

    from pladis.adapters import default_registry
    from pladis.cli._errors import CLIError
    from pladis.cli._loading import detect

    def missing(model, **kwargs):
        raise OSError(f"{model} does not appear to have a file named model_index.json")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "load_config", missing)
    registry = default_registry()
    assert detect(registry, "ByteDance/SDXL-Lightning").name == "sdxl-lightning"
    assert detect(registry, "tianweiy/DMD2").name == "dmd2"
    with pytest.raises(CLIError, match="cannot read model_index.json of 'org/unknown'"):
        detect(registry, "org/unknown")


def test_call_args_reach_a_seg_pipeline_through_its_kwargs(cli, tmp_path):
    """SEG's __call__ passes **kwargs on to the PAG pipeline's: its arguments are accepted (were refused)."""
    result = cli("generate", "x", "--seg-scale", "3", "--call-arg", "eta=0.5", "--steps", "1", "--out", "seg")
    assert result.code == 0, result.err
    assert sidecar(tmp_path / "seg" / "00-x.png")["sampling"]["eta"] == 0.5
    result = cli("generate", "x", "--seg-scale", "3", "--call-arg", "etta=0.5")
    assert result.code == 2 and "--call-arg etta: StableDiffusionSEGPipeline takes no argument 'etta'" in result.err
