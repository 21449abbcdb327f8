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
