"""Hyper-SDXL adapter: LCM/DDIM/TCD presets, 1-step UNet and fused LoRAs on a saved tiny SDXL "base"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from pladis_adapter_hyper_sdxl import FILES, MODEL_ID, SPEC, load_pipeline  # noqa: E402
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl  # noqa: E402
from pladis_registry.kit.distilled import save_lora, save_unet_checkpoint  # noqa: E402

PROMPT = "a red circle left of a blue square"
LAYER = "up_blocks.0.attentions.1.transformer_blocks.1.attn2.to_out.0"
TRAILING = {2: [999, 499], 4: [999, 749, 499, 249], 8: [999, 874, 749, 624, 499, 374, 249, 124]}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL pipeline saved with ``save_pretrained``: the "base model" folder."""
    folder = tmp_path_factory.mktemp("base")
    tiny_sdxl(0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A folder with tiny files under the repo's names: the 1-step UNet, the 4-step and unified LoRAs."""
    folder = tmp_path_factory.mktemp("weights")
    unet = tiny_sdxl(0).unet
    states = {
        "1step": save_unet_checkpoint(unet, folder / FILES["1step"]["unet"], seed=1),
        "4step": save_lora(unet, folder, FILES["4step"]["lora"], seed=4),
        "unified": save_lora(unet, folder, FILES["unified"]["lora"], seed=9, rank=4),
    }
    return folder, states


def _sample(pipe: Any, **call: Any) -> tuple[np.ndarray, list[int]]:
    seen: list[int] = []

    def record(pipe: Any, step: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        seen.append(int(t))
        return kwargs

    call.update(height=32, width=32, output_type="np", callback_on_step_end=record)
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **call).images, seen


def _fused(original: dict[str, Any], lora: dict[str, Any], scale: float = 1.0) -> Any:
    return original[LAYER + ".weight"] + scale * lora[LAYER + ".lora_B.weight"] @ lora[LAYER + ".lora_A.weight"]


def test_presets_follow_the_model_card(base: Path) -> None:
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler, TCDScheduler

    config = EulerDiscreteScheduler.from_pretrained(base / "scheduler").config
    assert list(SPEC.presets) == ["1step", "2step", "4step", "8step", "unified"]
    one = SPEC.preset("1step")
    assert type(one.make_scheduler(config)) is LCMScheduler
    assert one.call_kwargs() == {"guidance_scale": 0.0, "timesteps": [800]}
    for steps, expected in TRAILING.items():
        preset = SPEC.preset(f"{steps}step")
        scheduler = preset.make_scheduler(config)
        assert type(scheduler) is DDIMScheduler and scheduler.config.timestep_spacing == "trailing"
        assert scheduler.config.clip_sample is False
        assert preset.call_kwargs() == {"guidance_scale": 0.0, "num_inference_steps": steps}
        scheduler.set_timesteps(steps)
        assert scheduler.timesteps.tolist() == expected
    unified = SPEC.preset("unified")
    assert type(unified.make_scheduler(config)) is TCDScheduler
    assert unified.call_kwargs() == {"guidance_scale": 0.0, "num_inference_steps": 1, "eta": 1.0}


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_unet_checkpoint_replaces_the_base_weights(base: Path, tmp_path: Path, suffix: str) -> None:
    written = save_unet_checkpoint(tiny_sdxl(0).unet, tmp_path / f"distilled{suffix}", seed=2)
    pipe = load_pipeline(base, steps=1, weights=tmp_path / f"distilled{suffix}")
    state = pipe.unet.state_dict()
    assert state.keys() == written.keys()
    assert all(torch.equal(state[key], value) for key, value in written.items())
    assert pipe._pladis_model_id == f"{MODEL_ID} 1step unet"
    assert type(pipe.scheduler).__name__ == "LCMScheduler"


def test_n_step_lora_is_fused_into_the_weights(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    original = tiny_sdxl(0).unet.state_dict()
    pipe = load_pipeline(base, weights=folder, lora_scale=0.25)  # default: 4 steps, the only kind: lora
    assert pipe._pladis_model_id == f"{MODEL_ID} 4step lora" and pipe._pladis_preset == "4step"
    fused = pipe.unet.state_dict()[LAYER + ".weight"]
    torch.testing.assert_close(fused, _fused(original, states["4step"], 0.25), rtol=0, atol=1e-6)
    assert not torch.equal(fused, original[LAYER + ".weight"])
    assert not any("lora" in name for name, _ in pipe.unet.named_modules())
    assert pipe.unet.state_dict().keys() == original.keys()
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"


def test_unified_lora_samples_with_tcd_and_4_step_with_ddim(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    original = tiny_sdxl(0).unet.state_dict()
    pipe = load_pipeline(base, steps="unified", weights=folder)
    torch.testing.assert_close(pipe.unet.state_dict()[LAYER + ".weight"], _fused(original, states["unified"]),
                               rtol=0, atol=1e-6)
    assert type(pipe.scheduler).__name__ == "TCDScheduler" and pipe._pladis_preset == "unified"
    one, seen = _sample(pipe, **SPEC.preset("unified").call_kwargs())
    assert len(seen) == 1 and one.shape == (1, 32, 32, 3) and np.isfinite(one).all()
    four, seen = _sample(pipe, **SPEC.preset("4step").configure(pipe))
    assert seen == TRAILING[4] and np.isfinite(four).all() and not np.allclose(one, four)


def test_one_step_unet_samples_at_timestep_800(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    pipe = load_pipeline(base, steps=1, weights=folder)
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["1step"][LAYER + ".weight"])
    image, seen = _sample(pipe, **SPEC.preset("1step").call_kwargs())
    assert seen == [800] and np.isfinite(image).all()


def test_bad_steps_and_kind_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"steps=3.*\[1, 2, 4, 8, 'unified'\]"):
        load_pipeline("/nonexistent", steps=3)
    with pytest.raises(ValueError, match=r"kind='lora'.*'1step'.*\['unet'\].*'unified'"):
        load_pipeline("/nonexistent", steps=1, kind="lora")
    with pytest.raises(ValueError, match=r"kind='unet'.*'4step'.*\['lora'\].*\['1step'\]"):
        load_pipeline("/nonexistent", steps=4, kind="unet")


def test_auto_detection_ranks_hyper_sdxl_first(base: Path, weights: tuple[Path, dict]) -> None:
    from pladis.adapters import resolve_adapter

    pipe = load_pipeline(base, steps=1, weights=weights[0])
    assert resolve_adapter(pipe, pipe.unet, None).name == "hyper-sdxl"
    tiny = SPEC.tiny(0)
    assert resolve_adapter(tiny, tiny.unet, None).name == "hyper-sdxl"
    assert type(tiny.scheduler).__name__ == "LCMScheduler" and tiny._pladis_preset == "1step"
    plain = tiny_sdxl(0)
    assert resolve_adapter(plain, plain.unet, None).name == "sdxl"
    plain._pladis_model_id = "ByteDance/Hyper-SDXL-1step-lora.safetensors"
    assert resolve_adapter(plain, plain.unet, None).name == "hyper-sdxl"


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
    assert asked == [(MODEL_ID, "Hyper-SDXL-1step-Unet.safetensors")]
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["1step"][LAYER + ".weight"])
    load_pipeline(base, steps="unified")
    assert asked[-1] == (MODEL_ID, "Hyper-SDXL-1step-lora.safetensors")


def test_adapter_contract() -> None:
    from pladis_registry.testing import check_adapter

    check_adapter(SPEC)
