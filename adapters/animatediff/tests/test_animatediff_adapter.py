"""AnimateDiff adapter: PLADIS on the per-frame SD1.5 cross-attention of a tiny UNetMotionModel, motion
modules untouched; presets and the loader (a saved AnimateDiff folder, an SD1.5 base + motion adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import pladis  # noqa: E402
from pladis_adapter_animatediff import SPEC, load_pipeline, tiny_pipeline  # noqa: E402
from pladis_adapter_animatediff import adapter as adapter_module  # noqa: E402
from pladis_adapter_animatediff.tiny import FAST_CALL_KWARGS, tiny_components  # noqa: E402
from pladis_registry import Registry, make_plugin_manager  # noqa: E402
from pladis_registry.testing import check_adapter  # noqa: E402

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A registry holding only this adapter (independent of what else is installed)."""
    return Registry(make_plugin_manager(autoload=False, plugins=[adapter_module]))


@pytest.fixture(scope="module")
def pipe() -> Any:
    return tiny_pipeline(0)


def _frames(pipe: Any, **call: Any) -> np.ndarray:
    kwargs = {**FAST_CALL_KWARGS, **call}
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kwargs).frames


def _processors(unet: Any) -> dict[str, Any]:
    return dict(unet.attn_processors)


def test_adapter_contract() -> None:
    check_adapter(SPEC)


def test_tiny_is_a_motion_unet_with_cross_and_motion_attention(pipe: Any) -> None:
    from diffusers import UNetMotionModel
    from diffusers.models.attention_processor import Attention

    assert type(pipe.unet) is UNetMotionModel
    motion = [n for n, m in pipe.unet.named_modules() if isinstance(m, Attention) and ".motion_modules." in n]
    assert motion and not any(pipe.unet.get_submodule(n).is_cross_attention for n in motion)
    frames = _frames(pipe)
    assert frames.shape == (1, FAST_CALL_KWARGS["num_frames"], 32, 32, 3)


def test_exactly_the_spatial_cross_attention_is_replaced_and_remove_restores(pipe: Any, registry: Registry) -> None:
    before = _processors(pipe.unet)
    handle = pladis.apply(pipe, registry=registry)
    try:
        assert handle.adapter.name == "animatediff"  # auto-detected from the pipeline class
        expected = {
            "down_blocks.0.attentions.0.transformer_blocks.0.attn2",
            "mid_block.attentions.0.transformer_blocks.0.attn2",
            "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
            "up_blocks.1.attentions.1.transformer_blocks.0.attn2",
        }
        assert set(handle.layer_names) == expected
        after = _processors(pipe.unet)
        changed = {name.removesuffix(".processor") for name in before if after[name] is not before[name]}
        assert changed == expected  # self-attention and every motion module keep their very processor
        assert all(isinstance(after[f"{n}.processor"], pladis.PLADISAttnProcessor) for n in expected)
    finally:
        pladis.remove(pipe)
    restored = _processors(pipe.unet)
    assert all(restored[name] is before[name] for name in before)


def test_scale_zero_is_bit_identical_and_scale_two_differs(pipe: Any, registry: Registry) -> None:
    dense = _frames(pipe)
    with pladis.enabled(pipe, scale=0.0, registry=registry):
        off = _frames(pipe)
    with pladis.enabled(pipe, scale=2.0, registry=registry):
        on = _frames(pipe)
    assert np.array_equal(off, dense)
    assert np.isfinite(on).all()
    assert np.abs(on - dense).max() > 1e-3
    assert np.array_equal(_frames(pipe), dense)  # removed: dense again


def test_no_extra_denoiser_calls_and_every_frame_goes_through_pladis(pipe: Any, registry: Registry) -> None:
    calls: list[int] = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        _frames(pipe)
        dense_calls = len(calls)
        calls.clear()
        handle = pladis.apply(pipe, registry=registry)
        seen: list[int] = []
        module = handle.modules["mid_block.attentions.0.transformer_blocks.0.attn2"]
        probe = module.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].shape[0]),
                                                 with_kwargs=True)
        try:
            _frames(pipe)
        finally:
            probe.remove()
            handle.remove()
    finally:
        hook.remove()
    assert len(calls) == dense_calls == FAST_CALL_KWARGS["num_inference_steps"]
    # CFG × frames: the spatial cross-attention sees every frame of both branches in one batch
    assert set(seen) == {2 * FAST_CALL_KWARGS["num_frames"]}


def test_layer_groups_select_blocks(pipe: Any, registry: Registry) -> None:
    with pladis.enabled(pipe, layers="mid", registry=registry) as handle:
        assert handle.layer_names == ["mid_block.attentions.0.transformer_blocks.0.attn2"]
    with pytest.raises(ValueError, match="unknown layer group 'motion'"):
        pladis.apply(pipe, layers="motion", registry=registry)


def test_presets_follow_diffusers_animatediff_example() -> None:
    from diffusers import DDIMScheduler

    preset = SPEC.preset()
    assert SPEC.default_preset == "default" and set(SPEC.presets) == {"default", "quality"}
    scheduler = preset.make_scheduler(tiny_pipeline(0).scheduler.config)
    assert type(scheduler) is DDIMScheduler
    assert (scheduler.config.beta_schedule, scheduler.config.timestep_spacing, scheduler.config.clip_sample,
            scheduler.config.steps_offset) == ("linear", "linspace", False, 1)
    assert preset.call_kwargs() == {"guidance_scale": 7.5, "num_inference_steps": 25, "num_frames": 16}
    assert SPEC.preset("quality").call_kwargs()["num_inference_steps"] == 50


def test_loader_reads_a_saved_animatediff_folder(pipe: Any, tmp_path: Path) -> None:
    pipe.save_pretrained(tmp_path / "animatediff")
    loaded = load_pipeline(str(tmp_path / "animatediff"))
    assert type(loaded).__name__ == "AnimateDiffPipeline" and type(loaded.unet).__name__ == "UNetMotionModel"
    state, reference = loaded.unet.state_dict(), pipe.unet.state_dict()
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in reference)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(_frames(loaded), _frames(pipe), atol=1e-5)


def test_loader_joins_an_sd15_base_and_a_motion_adapter(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    parts = tiny_components(0)
    adapter = parts.pop("motion_adapter")
    StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path / "base")
    adapter.save_pretrained(tmp_path / "motion")
    loaded = load_pipeline(str(tmp_path / "base"), motion_adapter=str(tmp_path / "motion"))
    assert type(loaded.unet).__name__ == "UNetMotionModel"
    reference = tiny_pipeline(0).unet.state_dict()
    state = loaded.unet.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
