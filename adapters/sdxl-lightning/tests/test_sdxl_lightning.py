"""SDXL-Lightning adapter: presets, UNet/LoRA loading onto a saved tiny SDXL "base", sampling, detection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl  # noqa: E402
from pladis_adapter_sdxl_lightning import FILES, MODEL_ID, SPEC, load_pipeline  # noqa: E402
from pladis_registry.kit.distilled import save_lora, save_unet_checkpoint  # noqa: E402

PROMPT = "a red circle left of a blue square"
LAYER = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
TRAILING = {1: [999], 2: [999, 499], 4: [999, 749, 499, 249], 8: [999, 874, 749, 624, 499, 374, 249, 124]}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL pipeline saved with ``save_pretrained``: the "base model" folder."""
    folder = tmp_path_factory.mktemp("base")
    tiny_sdxl(0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def weights(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A folder with tiny distilled files under the repo's names: 1-step and 4-step UNets, the 4-step LoRA."""
    folder = tmp_path_factory.mktemp("weights")
    unet = tiny_sdxl(0).unet
    states = {
        "1step": save_unet_checkpoint(unet, folder / FILES["1step"]["unet"], seed=1),
        "4step": save_unet_checkpoint(unet, folder / FILES["4step"]["unet"], seed=4),
        "lora": save_lora(unet, folder, FILES["4step"]["lora"], seed=5),
    }
    return folder, states


def _timesteps(pipe: Any, **call: Any) -> tuple[np.ndarray, list[int]]:
    seen: list[int] = []

    def record(pipe: Any, step: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        seen.append(int(t))
        return kwargs

    call.update(height=32, width=32, output_type="np", callback_on_step_end=record)
    images = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **call).images
    return images, seen


def test_presets_follow_the_model_card(base: Path) -> None:
    from diffusers import EulerDiscreteScheduler

    config = EulerDiscreteScheduler.from_pretrained(base / "scheduler").config
    assert set(SPEC.presets) == {"1step", "2step", "4step", "8step"} and SPEC.default_preset == "4step"
    for steps, expected in TRAILING.items():
        preset = SPEC.preset(f"{steps}step")
        scheduler = preset.make_scheduler(config)
        assert type(scheduler) is EulerDiscreteScheduler
        assert scheduler.config.timestep_spacing == "trailing"
        assert scheduler.config.prediction_type == ("sample" if steps == 1 else "epsilon")
        assert preset.call_kwargs() == {"guidance_scale": 0.0, "num_inference_steps": steps}
        scheduler.set_timesteps(steps)
        assert scheduler.timesteps.round().long().tolist() == expected


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_unet_checkpoint_replaces_the_base_weights(base: Path, tmp_path: Path, suffix: str) -> None:
    written = save_unet_checkpoint(tiny_sdxl(0).unet, tmp_path / f"distilled{suffix}", seed=2)
    pipe = load_pipeline(base, steps=2, kind="unet", weights=tmp_path / f"distilled{suffix}")
    state = pipe.unet.state_dict()
    assert state.keys() == written.keys()
    assert all(torch.equal(state[key], value) for key, value in written.items())
    assert pipe._pladis_model_id == f"{MODEL_ID} 2step unet" and pipe._pladis_preset == "2step"
    assert pipe.scheduler.config.timestep_spacing == "trailing"


def test_folder_weights_pick_the_file_of_the_preset(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    pipe = load_pipeline(base, steps=1, weights=folder)
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["1step"][LAYER + ".weight"])
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert pipe.scheduler.config.prediction_type == "sample" and pipe._pladis_preset == "1step"
    # a known file name alone decides the preset and kind
    pipe = load_pipeline(base, weights=folder / FILES["4step"]["unet"])
    assert pipe._pladis_preset == "4step" and pipe._pladis_model_id.endswith("4step unet")
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["4step"][LAYER + ".weight"])


def test_lora_is_fused_into_the_weights(base: Path, weights: tuple[Path, dict]) -> None:
    folder, states = weights
    original = tiny_sdxl(0).unet.state_dict()
    pipe = load_pipeline(base, steps=4, kind="lora", weights=folder, lora_scale=0.5)
    lora = states["lora"]
    fused = pipe.unet.state_dict()[LAYER + ".weight"]
    expected = original[LAYER + ".weight"] + 0.5 * lora[LAYER + ".lora_B.weight"] @ lora[LAYER + ".lora_A.weight"]
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-6)
    assert not torch.equal(fused, original[LAYER + ".weight"])
    assert not any("lora" in name for name, _ in pipe.unet.named_modules())
    assert pipe.unet.state_dict().keys() == original.keys()
    assert pipe._pladis_model_id == f"{MODEL_ID} 4step lora"


def test_loaded_pipeline_samples_1_and_4_steps(base: Path, weights: tuple[Path, dict]) -> None:
    folder, _ = weights
    pipe = load_pipeline(base, steps=4, weights=folder)
    four, seen = _timesteps(pipe, **SPEC.preset("4step").call_kwargs())
    assert seen == TRAILING[4] and four.shape == (1, 32, 32, 3) and np.isfinite(four).all()
    one, seen = _timesteps(pipe, **SPEC.preset("1step").configure(pipe))
    assert seen == TRAILING[1] and np.isfinite(one).all() and not np.allclose(one, four)


def test_bad_steps_and_kind_name_the_allowed_values(base: Path, weights: tuple[Path, dict]) -> None:
    with pytest.raises(ValueError, match=r"steps=3.*\[1, 2, 4, 8\]"):
        load_pipeline("/nonexistent", steps=3)
    with pytest.raises(ValueError, match=r"kind='lora'.*'1step'.*\['unet'\]"):
        load_pipeline("/nonexistent", steps=1, kind="lora")
    with pytest.raises(ValueError, match=r"kind='full'.*\['unet', 'lora'\]"):
        load_pipeline("/nonexistent", steps=8, kind="full")
    with pytest.raises(ValueError, match="lora_scale"):
        load_pipeline(base, steps=4, kind="unet", weights=weights[0], lora_scale=0.5)
    with pytest.raises(FileNotFoundError, match="sdxl_lightning_8step_unet"):
        load_pipeline(base, steps=8, weights=weights[0])


def test_auto_detection_ranks_lightning_first(base: Path, weights: tuple[Path, dict]) -> None:
    from pladis.adapters import list_adapters, resolve_adapter

    pipe = load_pipeline(base, steps=4, weights=weights[0])
    assert resolve_adapter(pipe, pipe.unet, None).name == "sdxl-lightning"
    tiny = SPEC.tiny(0)
    assert resolve_adapter(tiny, tiny.unet, None).name == "sdxl-lightning"
    assert tiny._pladis_model_id.startswith(MODEL_ID) and tiny.scheduler.config.prediction_type == "sample"
    plain = tiny_sdxl(0)
    assert resolve_adapter(plain, plain.unet, None).name == "sdxl"
    (summary,) = [a for a in list_adapters() if a.name == "sdxl-lightning"]
    assert summary.distribution == "pladis-adapter-sdxl-lightning" and "4step" in summary.presets


def _fake_hub(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[tuple[str, str]]:
    """Serve ``hf_hub_download(repo, name)`` from ``folder``, recording the requests (no network)."""
    import huggingface_hub

    asked: list[tuple[str, str]] = []

    def download(repo_id: str, filename: str, **kwargs: Any) -> str:
        asked.append((repo_id, filename))
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return asked


def test_default_weights_come_from_the_hub_repo(base: Path, weights: tuple[Path, dict],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from pladis_adapter_sdxl import load_pipeline as load_sdxl
    from pladis_adapter_sdxl_lightning import DISTILLED

    folder, states = weights
    asked = _fake_hub(monkeypatch, folder)
    pipe = load_pipeline(base, steps=4, kind="lora")
    assert asked == [(MODEL_ID, "sdxl_lightning_4step_lora.safetensors")]
    assert pipe._pladis_model_id == f"{MODEL_ID} 4step lora"
    # model="ByteDance/SDXL-Lightning" means: that repo's weights on the default base
    local = dataclasses.replace(DISTILLED, base_model=str(base))
    pipe = local.load(load_sdxl, MODEL_ID, steps=1)
    assert asked[-1] == (MODEL_ID, "sdxl_lightning_1step_unet_x0.safetensors")
    assert torch.equal(pipe.unet.state_dict()[LAYER + ".weight"], states["1step"][LAYER + ".weight"])


def test_weights_file_of_another_preset_warns(base: Path, weights: tuple[Path, dict]) -> None:
    with pytest.warns(UserWarning, match=r"'4step'.*preset '2step'"):
        pipe = load_pipeline(base, steps=2, weights=weights[0] / FILES["4step"]["unet"])
    assert pipe._pladis_preset == "2step"


def test_adapter_contract() -> None:
    from pladis_registry.testing import check_adapter

    check_adapter(SPEC)
