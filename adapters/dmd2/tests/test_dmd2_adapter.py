"""DMD2 adapter: LCM presets, weights-only ``.bin`` UNets and fused LoRAs on a saved tiny SDXL "base"."""

from __future__ import annotations

import fractions
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from pladis_adapter_dmd2 import FILES, MODEL_ID, SPEC, load_pipeline  # noqa: E402
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl  # noqa: E402
from pladis_registry.kit.distilled import save_lora, save_unet_checkpoint  # noqa: E402

PROMPT = "a red circle left of a blue square"
LAYER = "mid_block.attentions.0.transformer_blocks.1.attn2.to_v"
TIMESTEPS = {"1step": [399], "4step": [999, 749, 499, 249]}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL pipeline saved with ``save_pretrained``: the "base model" folder."""
    folder = tmp_path_factory.mktemp("base")
    tiny_sdxl(0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A folder with tiny distilled files under the repo's names (``.bin`` UNets, a safetensors LoRA)."""
    folder = tmp_path_factory.mktemp("weights")
    unet = tiny_sdxl(0).unet
    states = {
        "1step": save_unet_checkpoint(unet, folder / FILES["1step"]["unet"], seed=1),
        "4step": save_unet_checkpoint(unet, folder / FILES["4step"]["unet"], seed=4),
        "lora": save_lora(unet, folder, FILES["4step"]["lora"], seed=5),
    }
    return folder, states


def _sample(pipe: Any, **call: Any) -> tuple[np.ndarray, list[int]]:
    seen: list[int] = []

    def record(pipe: Any, step: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        seen.append(int(t))
        return kwargs

    call.update(height=32, width=32, output_type="np", callback_on_step_end=record)
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **call).images, seen


class _SideEffect:
    """Unpickling this would create ``path`` (a stand-in for arbitrary code execution)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.makedirs, (str(self.path),)


def test_presets_use_lcm_at_the_training_timesteps(base: Path) -> None:
    from diffusers import EulerDiscreteScheduler, LCMScheduler

    config = EulerDiscreteScheduler.from_pretrained(base / "scheduler").config
    assert set(SPEC.presets) == {"1step", "4step"} and SPEC.default_preset == "4step"
    for name, timesteps in TIMESTEPS.items():
        preset = SPEC.preset(name)
        scheduler = preset.make_scheduler(config)
        assert type(scheduler) is LCMScheduler
        assert preset.call_kwargs() == {"guidance_scale": 0.0, "timesteps": timesteps}
        scheduler.set_timesteps(timesteps=timesteps)
        assert scheduler.timesteps.tolist() == timesteps


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_unet_checkpoint_replaces_the_base_weights(base: Path, tmp_path: Path, suffix: str) -> None:
    written = save_unet_checkpoint(tiny_sdxl(0).unet, tmp_path / f"distilled{suffix}", seed=2)
    pipe = load_pipeline(base, steps=1, weights=tmp_path / f"distilled{suffix}")
    state = pipe.unet.state_dict()
    assert state.keys() == written.keys()
    assert all(torch.equal(state[key], value) for key, value in written.items())
    assert pipe._pladis_model_id == f"{MODEL_ID} 1step unet" and pipe._pladis_preset == "1step"
    assert type(pipe.scheduler).__name__ == "LCMScheduler"


@pytest.mark.parametrize("payload", ["reduce", "object"])
def test_bin_with_python_objects_is_refused(base: Path, tmp_path: Path, payload: str) -> None:
    state = dict(tiny_sdxl(0).unet.state_dict())
    marker = tmp_path / "executed"
    state["extra"] = _SideEffect(marker) if payload == "reduce" else fractions.Fraction(1, 3)
    torch.save(state, tmp_path / FILES["4step"]["unet"])
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        load_pipeline(base, weights=tmp_path / FILES["4step"]["unet"])
    assert not marker.exists()


def test_bin_without_a_state_dict_is_refused(base: Path, tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "list.bin")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_pipeline(base, steps=4, kind="unet", weights=tmp_path / "list.bin")


def test_lora_is_fused_into_the_weights(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    original = tiny_sdxl(0).unet.state_dict()
    pipe = load_pipeline(base, steps=4, kind="lora", weights=folder)
    lora = states["lora"]
    fused = pipe.unet.state_dict()[LAYER + ".weight"]
    expected = original[LAYER + ".weight"] + lora[LAYER + ".lora_B.weight"] @ lora[LAYER + ".lora_A.weight"]
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-6)
    assert not torch.equal(fused, original[LAYER + ".weight"])
    assert not any("lora" in name for name, _ in pipe.unet.named_modules())
    assert pipe.unet.state_dict().keys() == original.keys()
    # the LoRA file's name alone selects kind "lora"
    again = load_pipeline(base, weights=folder / FILES["4step"]["lora"])
    assert again._pladis_model_id == f"{MODEL_ID} 4step lora"
    torch.testing.assert_close(again.unet.state_dict()[LAYER + ".weight"], fused, rtol=0, atol=0)


def test_loaded_pipeline_samples_1_and_4_steps(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    pipe = load_pipeline(base, weights=folder)
    assert pipe._pladis_preset == "4step"
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["4step"][LAYER + ".weight"])
    four, seen = _sample(pipe, **SPEC.preset("4step").call_kwargs())
    assert seen == TIMESTEPS["4step"] and four.shape == (1, 32, 32, 3) and np.isfinite(four).all()
    one, seen = _sample(pipe, **SPEC.preset("1step").configure(pipe))
    assert seen == TIMESTEPS["1step"] and np.isfinite(one).all() and not np.allclose(one, four)


def test_bad_steps_and_kind_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"steps=2.*\[1, 4\]"):
        load_pipeline("/nonexistent", steps=2)
    with pytest.raises(ValueError, match=r"kind='lora'.*'1step'.*\['unet'\].*\['4step'\]"):
        load_pipeline("/nonexistent", steps=1, kind="lora")
    with pytest.raises(ValueError, match=r"kind='x'.*\['unet', 'lora'\]"):
        load_pipeline("/nonexistent", steps=4, kind="x")


def test_auto_detection_ranks_dmd2_first(base: Path, weights: tuple[Path, dict]) -> None:
    from pladis.adapters import resolve_adapter

    pipe = load_pipeline(base, weights=weights[0])
    assert resolve_adapter(pipe, pipe.unet, None).name == "dmd2"
    tiny = SPEC.tiny(0, pag=True)
    assert type(tiny).__name__ == "StableDiffusionXLPAGPipeline"
    assert resolve_adapter(tiny, tiny.unet, None).name == "dmd2"
    assert type(tiny.scheduler).__name__ == "LCMScheduler" and tiny._pladis_preset == "1step"
    plain = tiny_sdxl(0)
    assert resolve_adapter(plain, plain.unet, None).name == "sdxl"
    plain._pladis_model_id = "someone/sdxl-dmd20-merge"  # no false positive on a longer number
    assert resolve_adapter(plain, plain.unet, None).name == "sdxl"


def test_default_weights_come_from_the_hub_repo(base: Path, weights: tuple[Path, dict],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    folder, states = weights
    asked: list[tuple[str, str]] = []

    def download(repo_id: str, filename: str, **kwargs: Any) -> str:
        asked.append((repo_id, filename))
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    pipe = load_pipeline(base, steps=1)
    assert asked == [(MODEL_ID, "dmd2_sdxl_1step_unet_fp16.bin")]
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["1step"][LAYER + ".weight"])
    load_pipeline(base, kind="lora")
    assert asked[-1] == (MODEL_ID, "dmd2_sdxl_4step_lora_fp16.safetensors")


def test_adapter_contract() -> None:
    from pladis_registry.testing import check_adapter

    check_adapter(SPEC)
