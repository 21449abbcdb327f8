"""PixArt-Sigma: the preset follows the model card, the pipeline is detected as pixart, block ranges."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import pladis  # noqa: E402
from pladis_adapter_pixart import SPEC, tiny_pipeline  # noqa: E402


def test_preset_is_dpm_solver_20_steps_cfg_4_5() -> None:
    pipe = tiny_pipeline(0)
    kwargs = SPEC.preset().configure(pipe)
    assert kwargs == {"guidance_scale": 4.5, "num_inference_steps": 20}
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++" and pipe.scheduler.config.beta_schedule == "linear"


def test_detected_among_the_installed_adapters_and_block_range_selects_those_blocks() -> None:
    pipe = tiny_pipeline(0, pag=True)
    handle = pladis.apply(pipe, layers="1-1")
    assert handle.adapter.name == "pixart" and handle.layer_names == ["transformer_blocks.1.attn2"]
    handle.remove()
    call = dict(SPEC.tiny_call_kwargs, pag_scale=2.0)
    images = [pipe("a red circle", generator=torch.Generator().manual_seed(0), **call).images for _ in range(2)]
    np.testing.assert_array_equal(images[0], images[1])


def test_cli_compare_on_a_saved_tiny_model_uses_the_adapter_and_its_preset(tmp_path, monkeypatch) -> None:
    import json

    from PIL import Image

    from pladis.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_pipeline(0).save_pretrained(tmp_path / "model")
    args = ["compare", "a red circle", "--model", str(tmp_path / "model"), "--steps", "2", "--height", "32",
            "--width", "32", "--out", str(tmp_path / "out"), "-q", "--call-arg", "use_resolution_binning=false",
            "--call-arg", "clean_caption=false", "--call-arg", "max_sequence_length=16"]
    assert main(args) in (0, None)
    sidecar = json.loads(next((tmp_path / "out").glob("*-pladis.json")).read_text())
    assert (sidecar["model"]["backbone"], sidecar["model"]["preset"]) == ("pixart", "default")
    assert sidecar["model"]["scheduler"] == "DPMSolverMultistepScheduler" and sidecar["sampling"]["guidance_scale"] == 4.5
    on, off = (np.asarray(Image.open(next((tmp_path / "out").glob(f"*-{k}.png")))) for k in ("pladis", "baseline"))
    assert on.shape == off.shape == (32, 32, 3) and not np.array_equal(on, off)
