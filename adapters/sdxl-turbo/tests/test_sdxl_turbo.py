"""SDXL-Turbo adapter: presets, loading a saved tiny SDXL as the "full distilled model", sampling, detection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from pladis_adapter_sdxl import load_pipeline as load_sdxl  # noqa: E402
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl  # noqa: E402
from pladis_adapter_sdxl_turbo import MODEL_ID, SPEC, load_pipeline  # noqa: E402

PROMPT = "a red circle left of a blue square"
TRAILING = {1: [999], 4: [999, 749, 499, 249]}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL pipeline saved with ``save_pretrained``: stands in for the full distilled model."""
    folder = tmp_path_factory.mktemp("model")
    tiny_sdxl(0).save_pretrained(folder)
    return folder


def _sample(pipe: Any, **call: Any) -> tuple[np.ndarray, list[int]]:
    seen: list[int] = []

    def record(pipe: Any, step: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        seen.append(int(t))
        return kwargs

    call.update(height=32, width=32, output_type="np", callback_on_step_end=record)
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **call).images, seen


def test_presets_follow_the_model_card(model: Path) -> None:
    from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

    config = EulerDiscreteScheduler.from_pretrained(model / "scheduler").config
    assert set(SPEC.presets) == {"1step", "4step"} and SPEC.default_preset == "1step"
    for steps, expected in TRAILING.items():
        preset = SPEC.preset(f"{steps}step")
        scheduler = preset.make_scheduler(config)
        assert type(scheduler) is EulerAncestralDiscreteScheduler
        assert scheduler.config.timestep_spacing == "trailing"
        assert preset.call_kwargs() == {"guidance_scale": 0.0, "num_inference_steps": steps,
                                        "height": 512, "width": 512}
        scheduler.set_timesteps(steps)
        assert scheduler.timesteps.round().long().tolist() == expected


def test_full_model_is_loaded_as_is_with_the_preset_scheduler(model: Path) -> None:
    pipe = load_pipeline(model)
    expected = tiny_sdxl(0).unet.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in pipe.unet.state_dict().items())
    assert pipe._pladis_model_id == f"{MODEL_ID} 1step full" and pipe._pladis_preset == "1step"
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    pag = load_pipeline(model, steps="4step", pag=True)
    assert type(pag).__name__ == "StableDiffusionXLPAGPipeline" and pag._pladis_preset == "4step"


def test_loaded_pipeline_samples_1_and_4_steps(model: Path) -> None:
    pipe = load_pipeline(model, steps=4)
    four, seen = _sample(pipe, **SPEC.preset("4step").call_kwargs())
    assert seen == TRAILING[4] and four.shape == (1, 32, 32, 3) and np.isfinite(four).all()
    one, seen = _sample(pipe, **SPEC.preset("1step").configure(pipe))
    assert seen == TRAILING[1] and np.isfinite(one).all() and not np.allclose(one, four)


def test_bad_steps_kind_and_weights_are_refused(model: Path) -> None:
    with pytest.raises(ValueError, match=r"steps=2.*\[1, 4\]"):
        load_pipeline("/nonexistent", steps=2)
    with pytest.raises(ValueError, match=r"kind='unet'.*\['full'\]"):
        load_pipeline("/nonexistent", kind="unet")
    with pytest.raises(ValueError, match="full model"):
        load_pipeline(model, weights=model / "unet")
    with pytest.raises(ValueError, match="lora_scale"):
        load_pipeline(model, lora_scale=0.5)


def test_auto_detection_ranks_turbo_first(model: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from pladis.adapters import list_adapters, resolve_adapter

    pipe = load_pipeline(model)
    assert resolve_adapter(pipe, pipe.unet, None).name == "sdxl-turbo"
    tiny = SPEC.tiny(0)
    assert resolve_adapter(tiny, tiny.unet, None).name == "sdxl-turbo"
    assert type(tiny.scheduler).__name__ == "EulerAncestralDiscreteScheduler" and tiny._pladis_preset == "1step"
    # a Turbo folder loaded without this package is detected by its path alone
    named = tmp_path_factory.mktemp("models") / "sdxl-turbo"
    tiny_sdxl(0).save_pretrained(named)
    plain = load_sdxl(named)
    assert resolve_adapter(plain, plain.unet, None).name == "sdxl-turbo"
    anonymous = tiny_sdxl(0)
    assert resolve_adapter(anonymous, anonymous.unet, None).name == "sdxl"
    (summary,) = [a for a in list_adapters() if a.name == "sdxl-turbo"]
    assert summary.distribution == "pladis-adapter-sdxl-turbo" and summary.presets == ("1step", "4step")


def test_adapter_contract() -> None:
    from pladis_registry.testing import check_adapter

    check_adapter(SPEC)
