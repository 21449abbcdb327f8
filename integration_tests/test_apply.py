"""pladis.apply on every adapter's tiny pipeline: presets, bit-exact λ = 0, no extra NFEs, remove()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

import pladis
from pladis.adapters import default_registry, resolve_adapter
from pladis.apply import cross_attention_modules

MAX_STEPS = 4  # long presets (25–50 steps) are shortened: the preset's scheduler is still used


def _cases() -> list[tuple[str, str]]:
    cases = []
    for info in sorted(default_registry().adapters().values(), key=lambda i: i.name):
        # adapters declaring new-style attention (extra["attention"]: joint / SDPA interception) have no
        # legacy cross-attention modules; check_adapter runs their presets (packages/pladis/tests/test_joint_families.py)
        if info.spec.tiny is not None and "attention" not in info.spec.extra:
            cases += [(info.name, preset) for preset in info.spec.presets]
    return cases


def _denoiser(pipe):
    return getattr(pipe, "unet", None) or pipe.transformer


def _run(pipe, spec, preset_name: str) -> tuple[np.ndarray, int]:
    kwargs = spec.preset(preset_name).configure(pipe)
    if kwargs.get("num_inference_steps", 0) > MAX_STEPS:
        kwargs["num_inference_steps"] = MAX_STEPS
    kwargs.update(spec.tiny_call_kwargs)
    if "timesteps" in kwargs:
        kwargs.pop("num_inference_steps", None)
    calls = []
    hook = _denoiser(pipe).register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        image = pipe("a red circle left of a blue square", generator=torch.Generator().manual_seed(0), **kwargs).images
    finally:
        hook.remove()
    return np.asarray(image), len(calls)


@pytest.mark.parametrize("backbone,preset", _cases())
def test_preset_run_with_pladis(backbone, preset):
    spec = default_registry().get(backbone).spec
    pipe = spec.tiny(seed=0)
    pipe.set_progress_bar_config(disable=True)
    baseline, nfe_base = _run(pipe, spec, preset)
    denoiser = _denoiser(pipe)
    before = dict(denoiser.attn_processors)

    handle = pladis.apply(pipe, scale=0.0, backbone=backbone)
    zero, nfe_zero = _run(pipe, spec, preset)
    assert np.array_equal(zero, baseline), "scale=0 must be bit-identical to never applying"

    handle = pladis.apply(pipe, scale=2.0, alpha=1.5, backbone=backbone)
    boosted, nfe_pladis = _run(pipe, spec, preset)
    assert np.isfinite(boosted).all()
    assert np.abs(boosted - baseline).max() > 1e-4
    assert nfe_base == nfe_zero == nfe_pladis > 0, "PLADIS adds no denoiser calls"

    cross = {n for n, m in denoiser.named_modules() if isinstance(m, Attention) and m.is_cross_attention}
    assert set(handle.layer_names) == cross
    for key, proc in denoiser.attn_processors.items():
        name = key.removesuffix(".processor")
        if name in cross:
            assert isinstance(proc, pladis.PLADISAttnProcessor) and proc.scale == 2.0
        else:
            assert proc is before[key]

    handle.remove()
    assert all(proc is before[key] for key, proc in denoiser.attn_processors.items())
    restored, _ = _run(pipe, spec, preset)
    assert np.array_equal(restored, baseline)


def test_auto_detection_picks_each_backbone():
    registry = default_registry()
    for name in ("sd15", "sdxl", "sana", "sample"):
        pipe = registry.get(name).spec.tiny(seed=0)
        assert resolve_adapter(pipe, _denoiser(pipe), None).name == name
        # a bare denoiser is matched by class and config (SD1.5 vs SDXL UNets)
        if name in ("sd15", "sdxl", "sana"):
            assert resolve_adapter(_denoiser(pipe), _denoiser(pipe), None).name == name


def test_generic_fallback_serves_an_unknown_denoiser():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8, norm_num_groups=8, addition_embed_type="text", encoder_hid_dim=16,
    )
    handle = pladis.apply(unet)
    assert handle.adapter.name == "generic" and handle.adapter.preset().call_kwargs() == {}  # the pipeline's own CFG
    assert {n.split(".")[0] for n in handle.layer_names} == {"down_blocks", "mid_block", "up_blocks"}
    handle.remove()
    with pytest.raises(ValueError, match=r"unknown layer group 'mid'.*'down_blocks'"):
        pladis.apply(unet, layers="mid")


@pytest.mark.parametrize("backbone,groups", [("sd15", ["down", "mid", "up"]), ("sdxl", ["down", "mid", "up"])])
def test_layer_groups_change_exactly_the_selected_modules(backbone, groups):
    spec = default_registry().get(backbone).spec
    pipe = spec.tiny(seed=0)
    unet = pipe.unet
    all_cross = set(pladis.apply(pipe).layer_names)
    pladis.remove(pipe)
    for group in groups:
        handle = pladis.apply(pipe, layers=group)
        prefix = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}[group]
        assert set(handle.layer_names) == {n for n in all_cross if n.startswith(prefix)} != set()
        replaced = {k.removesuffix(".processor") for k, p in unet.attn_processors.items()
                    if isinstance(p, pladis.PLADISAttnProcessor)}
        assert replaced == set(handle.layer_names)
    handle = pladis.apply(pipe, layers=["down", "up"])
    assert {n.split(".")[0] for n in handle.layer_names} == {"down_blocks", "up_blocks"}
    pladis.remove(pipe)


def test_sana_block_index_selection():
    pipe = default_registry().get("sana").spec.tiny(seed=0)
    handle = pladis.apply(pipe, layers=1)
    assert handle.layer_names == ["transformer_blocks.1.attn2"]
    assert pladis.apply(pipe, layers="0-1").layer_names == ["transformer_blocks.0.attn2", "transformer_blocks.1.attn2"]
    assert pladis.apply(pipe, layers=range(0, 1)).layer_names == ["transformer_blocks.0.attn2"]
    with pytest.raises(ValueError, match=r"no cross-attention block has an index in 7"):
        pladis.apply(pipe, layers=7)
    pladis.remove(pipe)


def test_apply_twice_replaces_settings_and_enabled_restores():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    originals = dict(pipe.unet.attn_processors)
    first = pladis.apply(pipe, scale=2.0)
    second = pladis.apply(pipe, scale=1.0, alpha=2.0, layers="mid")
    assert not first.active and second.active
    procs = [p for p in pipe.unet.attn_processors.values() if isinstance(p, pladis.PLADISAttnProcessor)]
    assert len(procs) == len(second.layer_names) and all(p.scale == 1.0 and p.alpha == 2.0 for p in procs)
    assert all(p.original is originals[f"{n}.processor"] for p, n in zip(procs, second.layer_names, strict=True))
    with pladis.enabled(pipe, scale=3.0) as inner:
        assert len(inner.layer_names) > len(second.layer_names)
    # the previous application is back after the block
    assert [p.scale for p in pipe.unet.attn_processors.values() if isinstance(p, pladis.PLADISAttnProcessor)] == [1.0]
    assert pladis.remove(pipe) is True and pladis.remove(pipe) is False
    assert dict(pipe.unet.attn_processors) == originals


def test_enabled_restores_the_same_handle_also_from_a_custom_registry():
    import types

    from pladis_registry import AdapterSpec, Registry, hookimpl, make_plugin_manager

    @hookimpl
    def pladis_register_adapters(register):
        register(AdapterSpec(name="my-unet", denoiser_classes=("UNet2DConditionModel",)))

    registry = Registry(make_plugin_manager(autoload=False, plugins=[types.SimpleNamespace(pladis_register_adapters=pladis_register_adapters)]))
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    originals = dict(pipe.unet.attn_processors)
    outer = pladis.apply(pipe, scale=3.0, start=0.2, registry=registry)
    installed = dict(pipe.unet.attn_processors)
    assert outer.adapter.name == "my-unet"
    with pladis.enabled(pipe, scale=1.0, registry=registry) as inner:
        assert inner.active and not outer.active
    assert outer.active and dict(pipe.unet.attn_processors) == installed  # the same processor objects
    assert outer.window is not None and len(pipe.unet._forward_pre_hooks) == 1  # its step-window hook, once
    outer.remove()
    assert dict(pipe.unet.attn_processors) == originals and not pipe.unet._forward_pre_hooks


def test_diffusers_calls_that_replace_the_processors_turn_active_off_and_remove_clobbers_nothing():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    kwargs = default_registry().get("sd15").spec.tiny_call_kwargs
    originals = dict(pipe.unet.attn_processors)

    def image():
        return np.asarray(pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images)

    baseline = image()
    handle = pladis.apply(pipe)
    boosted = image()
    assert handle.active and np.abs(boosted - baseline).max() > 1e-3
    pipe.enable_attention_slicing()  # sets a sliced processor on every attention module: PLADIS is off
    assert not handle.active and np.abs(image() - baseline).max() < 1e-5  # (slicing's own rounding)
    sliced = dict(pipe.unet.attn_processors)
    assert pladis.remove(pipe) is True and dict(pipe.unet.attn_processors) == sliced  # left as diffusers set them
    with pytest.raises(ValueError, match=r"attention slicing: pipe.disable_attention_slicing\(\)"):
        pladis.apply(pipe)
    pipe.unet.set_attn_processor(dict(originals))  # (diffusers empties the dict it is given)

    # fused QKV keeps the processors it replaced and puts them back when unfused: PLADIS's become the originals
    handle = pladis.apply(pipe)
    pipe.fuse_qkv_projections()
    assert not handle.active and pladis.remove(pipe) is True
    pipe.unfuse_qkv_projections()
    assert dict(pipe.unet.attn_processors) == originals and np.array_equal(image(), baseline)


def test_remove_also_takes_out_pladis_processors_without_a_handle():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    originals = dict(pipe.unet.attn_processors)
    name = next(n for n, m in cross_attention_modules(pipe.unet).items())
    module = cross_attention_modules(pipe.unet)[name]
    module.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5, 1.0, original=module.processor))
    handle = pladis.apply(pipe)  # wraps the processor the orphan replaced, not the orphan
    assert handle.originals[name] is originals[f"{name}.processor"]
    handle.remove()
    assert dict(pipe.unet.attn_processors) == originals
    module.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5, 1.0, original=originals[f"{name}.processor"]))
    assert pladis.remove(pipe) is True and dict(pipe.unet.attn_processors) == originals
    assert pladis.remove(pipe) is False


def test_errors_name_the_choices_and_change_nothing():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError, match=r"unknown backbone 'nope'; choose one of \[.*'sd15'.*\]"):
        pladis.apply(pipe, backbone="nope")
    with pytest.raises(ValueError, match=r"unknown layer group 'middle' for backbone 'sd15'; choose from \['all', 'down', 'mid', 'up'\]"):
        pladis.apply(pipe, layers=["down", "middle"])
    with pytest.raises(ValueError, match=r"backbone 'sana' does not fit a UNet2DConditionModel"):
        pladis.apply(pipe, backbone="sana")
    with pytest.raises(ValueError, match=r"alpha must be in \[1, 2\]"):
        pladis.apply(pipe, alpha=3)
    with pytest.raises(ValueError, match="no cross-attention modules"):
        pladis.apply(_self_attention_only_model())
    with pytest.raises(ValueError, match="must be a diffusers pipeline"):
        pladis.apply(object())
    assert dict(pipe.unet.attn_processors) == before


def _self_attention_only_model():
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                       down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
                       norm_num_groups=8)


def test_foreign_cross_attention_processor_is_refused_not_dropped():
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    name, module = next((n, m) for n, m in pipe.unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention)
    module.set_processor(AttnAddedKVProcessor())
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError, match=rf"cross-attention '{name}' uses AttnAddedKVProcessor"):
        pladis.apply(pipe)
    assert dict(pipe.unet.attn_processors) == before
    assert pladis.apply(pipe, layers="up").layer_names  # other groups still work


def test_pag_processors_survive_in_both_orders():
    spec = default_registry().get("sd15").spec
    pipe = spec.tiny(seed=0, pag=True)
    kwargs = dict(spec.tiny_call_kwargs, guidance_scale=5.0, pag_scale=3.0)

    def run():
        calls = []
        hook = pipe.unet.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
        out = pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images
        hook.remove()
        return np.asarray(out), calls

    pag_only, calls = run()
    assert calls == [3] * kwargs["num_inference_steps"]  # (uncond, cond, perturbed) in one forward
    handle = pladis.apply(pipe)
    with_pladis, calls_pladis = run()
    assert calls_pladis == calls and not np.array_equal(with_pladis, pag_only)
    # PAG's save/restore kept our processors
    assert all(isinstance(pipe.unet.attn_processors[f"{n}.processor"], pladis.PLADISAttnProcessor) for n in handle.layer_names)
    handle.remove()
    assert np.array_equal(run()[0], pag_only)


def test_sample_third_party_plugin_is_discovered_through_its_entry_point():
    summary = {a.name: a for a in pladis.list_adapters()}["sample"]
    assert (summary.distribution, summary.version) == ("pladis-sample-adapter", "0.0.1")
    pipe = default_registry().get("sample").spec.tiny(seed=0)
    handle = pladis.apply(pipe, layers="bottleneck")
    assert handle.adapter.name == "sample"
    assert handle.layer_names and all(n.startswith("mid_block.") for n in handle.layer_names)


def test_a_broken_plugin_never_breaks_apply(caplog):
    import logging
    import types

    from pladis_registry import Registry, hookimpl, make_plugin_manager

    @hookimpl
    def pladis_register_adapters(register):
        raise ImportError("missing dependency of a third-party adapter")

    manager = make_plugin_manager(plugins=[types.SimpleNamespace(pladis_register_adapters=pladis_register_adapters)])
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    with caplog.at_level(logging.ERROR, logger="pladis.registry"):
        handle = pladis.apply(pipe, registry=Registry(manager))
    assert handle.adapter.name == "sd15"
    assert "missing dependency of a third-party adapter" in caplog.text


def test_backend_is_forwarded_and_checked():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    kwargs = dict(default_registry().get("sd15").spec.tiny_call_kwargs)
    images = {}
    for backend in ("eager", "auto"):
        with pladis.enabled(pipe, backend=backend) as handle:
            procs = [pipe.unet.attn_processors[f"{n}.processor"] for n in handle.layer_names]
            assert {p.backend for p in procs} == {backend}
            images[backend] = np.asarray(pipe("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images)
    np.testing.assert_allclose(images["eager"], images["auto"], atol=1e-5)
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'eager', 'compile', 'triton', 'native'; got 'cuda'"):
        pladis.apply(pipe, backend="cuda")
    assert dict(pipe.unet.attn_processors) == before


def test_enabled_also_takes_out_a_handle_applied_inside_the_block():
    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    originals = dict(pipe.unet.attn_processors)
    outer = pladis.apply(pipe, layers="down", start=0.2)
    installed = dict(pipe.unet.attn_processors)
    with pladis.enabled(pipe, scale=1.0):
        pladis.apply(pipe, layers="all", start=0.5)  # replaces the block's handle
    assert outer.active and dict(pipe.unet.attn_processors) == installed
    assert len(pipe.unet._forward_pre_hooks) == 1  # the outer handle's only (the inner one's leaked)
    outer.remove()
    assert dict(pipe.unet.attn_processors) == originals and not pipe.unet._forward_pre_hooks


def test_recorders_over_the_handles_processors_are_taken_out_by_remove():
    """The CLI's attention-map recorders replace the handle's processors; remove() restores the originals."""
    from pladis.cli._attention_maps import AttentionMapStore, install_recorders

    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    originals = dict(pipe.unet.attn_processors)
    handle = pladis.apply(pipe)
    install_recorders(handle, AttentionMapStore(), baseline=True)
    assert not handle.active
    handle.remove()
    assert dict(pipe.unet.attn_processors) == originals and pladis.remove(pipe) is False


def test_remove_keeps_a_processor_another_tool_set_over_pladis():
    """An IP-Adapter-style processor set over PLADIS's (it holds the adapter's weights) stays on remove()."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    pipe = default_registry().get("sd15").spec.tiny(seed=0)
    handle = pladis.apply(pipe)
    for module in cross_attention_modules(pipe.unet).values():
        module.set_processor(IPAdapterAttnProcessor2_0(hidden_size=module.inner_dim, cross_attention_dim=module.cross_attention_dim))
    handle.remove()
    kinds = {type(m.processor).__name__ for m in cross_attention_modules(pipe.unet).values()}
    assert kinds == {"IPAdapterAttnProcessor2_0"}
