"""The SDPA-interception mechanism (pladis.intercept): its two kinds, the contract, the adapter data."""

from __future__ import annotations

import pytest
import torch

import pladis
from pladis.intercept import InterceptProcessor, intercept_config
from pladis.joint import joint_weights
from pladis_registry import AdapterSpec, Registry, hookimpl, make_plugin_manager

JOINT = {"kind": "joint", "token_order": "text_first", "text_length": "encoder_hidden_states", "timestep_scale": 1000}
FLUX_GROUPS = {"double": r"^transformer_blocks\.\d+\.attn$", "single": r"^single_transformer_blocks\.\d+\.attn$"}


def _registry(*specs: AdapterSpec) -> Registry:
    class Plugin:
        @hookimpl
        def pladis_register_adapters(self, register):
            for spec in specs:
                register(spec)

    return Registry(make_plugin_manager(autoload=False, plugins=[Plugin()]))


def _flux_spec(**attention) -> AdapterSpec:
    return AdapterSpec(
        name="joint-test", denoiser_classes=("FluxTransformer2DModel",), layer_groups=FLUX_GROUPS,
        block_index_pattern=r"transformer_blocks\.(\d+)\.", extra={"attention": {**JOINT, **attention}},
    )


@pytest.fixture(scope="module")
def flux():
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    ).eval()
    gen = torch.Generator().manual_seed(1)
    n_img, n_txt = 16, 7
    inputs = dict(
        hidden_states=torch.randn(1, n_img, 4, generator=gen),
        encoder_hidden_states=torch.randn(1, n_txt, 32, generator=gen),
        pooled_projections=torch.randn(1, 32, generator=gen),
        timestep=torch.tensor([0.5]),
        img_ids=torch.randn(n_img, 3, generator=gen),
        txt_ids=torch.zeros(n_txt, 3),
        return_dict=False,
    )
    return model, inputs


def _run(model, inputs):
    with torch.no_grad():
        return model(**inputs)[0]


def test_scale_zero_is_bit_identical_and_remove_restores_everything(flux):
    model, inputs = flux
    registry = _registry(_flux_spec())
    base = _run(model, inputs)
    processors = dict(model.attn_processors)
    pre_hooks, hooks = dict(model._forward_pre_hooks), dict(model._forward_hooks)
    handle = pladis.apply(model, scale=0.0, registry=registry)
    assert torch.equal(_run(model, inputs), base)
    handle = pladis.apply(model, scale=2.0, registry=registry)
    assert all(isinstance(p, InterceptProcessor) for p in handle.processors.values())
    changed = _run(model, inputs)
    assert bool(changed.isfinite().all()) and not torch.allclose(changed, base, atol=1e-4)
    handle.remove()
    assert all(model.attn_processors[name] is proc for name, proc in processors.items())
    assert dict(model._forward_pre_hooks) == pre_hooks and dict(model._forward_hooks) == hooks
    assert not hasattr(model, "_pladis_handle")
    assert torch.equal(_run(model, inputs), base)


def test_layer_groups_and_indices_pick_exactly_the_declared_modules(flux):
    model, _ = flux
    registry = _registry(_flux_spec())
    with pladis.enabled(model, registry=registry) as handle:
        assert handle.layer_names == [
            "transformer_blocks.0.attn", "transformer_blocks.1.attn",
            "single_transformer_blocks.0.attn", "single_transformer_blocks.1.attn",
        ]
    with pladis.enabled(model, layers="single", registry=registry) as handle:
        assert handle.layer_names == ["single_transformer_blocks.0.attn", "single_transformer_blocks.1.attn"]
        wrapped = {n for n, p in model.attn_processors.items() if isinstance(p, InterceptProcessor)}
        assert wrapped == {f"{n}.processor" for n in handle.layer_names}
    with pladis.enabled(model, layers=["double", 1], registry=registry) as handle:
        assert handle.layer_names == [
            "transformer_blocks.0.attn", "transformer_blocks.1.attn", "single_transformer_blocks.1.attn",
        ]
    with pytest.raises(ValueError, match="unknown layer group 'mid'"):
        pladis.apply(model, layers="mid", registry=registry)
    assert not any(isinstance(p, InterceptProcessor) for p in model.attn_processors.values())


def test_joint_kind_equals_diffusers_processor_with_only_the_product_swapped(flux, monkeypatch):
    """Oracle: FluxAttnProcessor with ``dispatch_attention_fn`` replaced by the explicit joint weights @ V."""
    import diffusers.models.transformers.transformer_flux as flux_module

    model, inputs = flux
    n_txt = inputs["encoder_hidden_states"].shape[1]
    with pladis.enabled(model, scale=2.0, alpha=1.5, registry=_registry(_flux_spec())):
        ours = _run(model, inputs)

    def explicit(query, key, value, attn_mask=None, **_):  # (B, N, H, D), as diffusers passes them
        q, k, v = (x.transpose(1, 2) for x in (query, key, value))
        weights = joint_weights(q, k, attn_mask, text=(0, n_txt), scale=2.0, alpha=1.5)
        return (weights @ v.float()).to(v.dtype).transpose(1, 2)

    monkeypatch.setattr(flux_module, "dispatch_attention_fn", explicit)
    reference = _run(model, inputs)
    assert torch.allclose(ours, reference, atol=2e-5, rtol=0)


def test_step_window_delegates_outside(flux):
    model, inputs = flux
    registry = _registry(_flux_spec())
    base = _run(model, inputs)
    # timestep 0.5 × timestep_scale 1000 = t 500: progress 0.5
    with pladis.enabled(model, start=0.0, end=0.4, registry=registry):
        assert torch.equal(_run(model, inputs), base)
    with pladis.enabled(model, start=0.4, end=0.6, registry=registry):
        assert not torch.allclose(_run(model, inputs), base, atol=1e-4)


def test_blocks_called_alone_say_where_the_text_length_comes_from(flux):
    model, inputs = flux
    block = model.single_transformer_blocks[0]
    with pladis.enabled(model, layers="single", registry=_registry(_flux_spec())):
        handle = model._pladis_handle
        handle.context.text_length = None
        with pytest.raises(RuntimeError, match="text length"), torch.no_grad():
            block(torch.randn(1, 23, 32), torch.randn(1, 7, 32), torch.randn(1, 32))


def test_cross_kind_matches_the_legacy_pladis_processor():
    """A legacy ``Attention`` cross-attention through the intercepting wrapper equals PLADISAttnProcessor."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    torch.manual_seed(0)
    attn = Attention(32, cross_attention_dim=24, heads=2, dim_head=16, qk_norm="rms_norm").eval()
    attn.set_processor(AttnProcessor2_0())
    x, ctx = torch.randn(2, 10, 32), torch.randn(2, 6, 24)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    spec = AdapterSpec(name="cross-test", layer_groups={"all": "^$"}, extra={"attention": {"kind": "cross"}})
    from pladis.intercept import TextContext, wrap_processor

    config = intercept_config(spec)
    wrapper = wrap_processor(attn.processor, config, TextContext(attn, config, None), 2.0, 1.5, 1.0, "eager")
    bias = torch.zeros(2, 1, 6).masked_fill(~mask[:, None, :], float("-inf"))
    with torch.no_grad():
        ours = wrapper(attn, x, ctx, attention_mask=bias)
        ref = pladis.PLADISAttnProcessor(2.0, 1.5, backend="eager")(attn, x, ctx, attention_mask=bias)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert not torch.allclose(ours, attn.processor(attn, x, ctx, attention_mask=bias), atol=1e-4)


@pytest.mark.parametrize(
    "attention,message",
    [
        ({"kind": "both"}, "kind"),
        ({"kind": "joint", "text_length": "encoder_hidden_states", "token_order": "middle"}, "token_order"),
        ({"kind": "joint"}, "text_length"),
        ({"kind": "cross", "call": -1}, "call"),
        ({"kind": "cross", "colour": 1}, "unknown keys"),
        ({"kind": "cross", "timestep_scale": 0}, "timestep_scale"),
    ],
)
def test_bad_adapter_data_is_refused_by_name(attention, message):
    spec = AdapterSpec(name="bad", layer_groups={"x": "attn"}, extra={"attention": attention})
    with pytest.raises(ValueError, match=message):
        intercept_config(spec)


def test_the_wrapper_keeps_the_original_call_signature(flux):
    import inspect

    model, _ = flux
    with pladis.enabled(model, registry=_registry(_flux_spec())) as handle:
        wrapper = next(iter(handle.processors.values()))
        original = handle.originals[handle.layer_names[0]]
        assert inspect.signature(wrapper.__call__).parameters.keys() == inspect.signature(original.__call__).parameters.keys()


def test_call_index_replaces_only_that_sdpa_call():
    """``call`` = 1: a processor's second SDPA call (Wan I2V's text call, after its image call) gets
    PLADIS, the first stays SDPA."""
    import torch.nn.functional as F

    from pladis.intercept import TextContext, wrap_processor

    class TwoCalls:
        def __call__(self, attn, q, k, v):
            return F.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v)

    q, k, v = (torch.randn(1, 2, 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    dense = F.scaled_dot_product_attention(q, k, v)
    ours = pladis.pladis_attention(q, k, v, scale=2.0, backend="eager")
    for call, expected in ((1, (dense, ours)), ("all", (ours, ours))):
        spec = AdapterSpec(name="calls", layer_groups={"x": "x"}, extra={"attention": {"kind": "cross", "call": call}})
        config = intercept_config(spec)
        wrapper = wrap_processor(TwoCalls(), config, TextContext(torch.nn.Linear(1, 1), config, None), 2.0, 1.5, 1.0,
                                 "eager")
        first, second = wrapper(None, q, k, v)
        assert torch.allclose(first, expected[0], atol=1e-6) and torch.allclose(second, expected[1], atol=1e-6)


def test_enabled_inside_an_applied_handle_gives_it_back_with_its_hook(flux):
    model, inputs = flux
    registry = _registry(_flux_spec())
    outer = pladis.apply(model, scale=1.0, registry=registry)
    outer_out = _run(model, inputs)
    user_hook = model.register_forward_pre_hook(lambda module, args: None)  # registered after PLADIS's
    processors, pre_hooks = dict(model.attn_processors), dict(model._forward_pre_hooks)
    with pladis.enabled(model, scale=2.0, registry=registry) as inner:
        assert inner.active and not outer.active
        assert not torch.equal(_run(model, inputs), outer_out)
    assert outer.active and all(model.attn_processors[n] is p for n, p in processors.items())
    assert model._forward_pre_hooks == pre_hooks  # the outer handle's text-length hook: same key, same place
    assert list(model._forward_pre_hooks) == list(pre_hooks)
    assert torch.equal(_run(model, inputs), outer_out)
    outer.remove()
    user_hook.remove()
    assert not hasattr(model, "_pladis_handle") and not model._forward_pre_hooks


def test_repr_is_one_short_line(flux):
    model, _ = flux
    handle = pladis.apply(model, registry=_registry(_flux_spec()))
    try:
        text = repr(handle)
        assert "\n" not in text and len(text) < 300 and "joint-test" in text and "λ=2" in text
    finally:
        handle.remove()


def test_attention_backends_set_after_apply_reach_the_processor_and_are_checked(flux):
    """``set_attention_backend`` after apply sets the original processors' back-end (not the wrapper's);
    an SDPA back-end keeps PLADIS (same output), another one is refused at the next call, by name — also
    when it comes from diffusers' active back-end (which ``reset_attention_backend`` leaves in place)."""
    from diffusers.models.attention_dispatch import attention_backend

    model, inputs = flux
    pladis.remove(model)
    handle = pladis.apply(model, scale=2.0, registry=_registry(_flux_spec()))
    try:
        boosted = _run(model, inputs)
        model.set_attention_backend("_native_math")
        wrapped = model.transformer_blocks[0].attn.processor
        assert isinstance(wrapped, InterceptProcessor)
        assert getattr(wrapped.original._attention_backend, "value", None) == "_native_math"
        assert "_attention_backend" not in vars(wrapped)
        assert torch.allclose(_run(model, inputs), boosted, atol=1e-6, rtol=0)
        model.set_attention_backend("flex")
        with pytest.raises(RuntimeError, match=r"back-end is 'flex' \(set after pladis.apply\)"):
            _run(model, inputs)
        model.reset_attention_backend()  # the processors' back-end None: diffusers' active one, still flex
        with pytest.raises(RuntimeError, match="back-end is 'flex'"):
            _run(model, inputs)
        model.set_attention_backend("native")
        assert torch.equal(_run(model, inputs), boosted)
        model.reset_attention_backend()
        with attention_backend("flex"), pytest.raises(RuntimeError, match="back-end is 'flex'"):
            _run(model, inputs)
        assert torch.equal(_run(model, inputs), boosted)
    finally:
        model.set_attention_backend("native")
        model.reset_attention_backend()
        handle.remove()


def test_apply_refuses_a_backend_it_cannot_intercept_and_changes_nothing(flux):
    model, inputs = flux
    pladis.remove(model)
    model.set_attention_backend("flex")
    try:
        before = dict(model.attn_processors)
        with pytest.raises(ValueError, match="runs the attention back-end 'flex'"):
            pladis.apply(model, scale=2.0, registry=_registry(_flux_spec()))
        assert model.attn_processors == before
        model.set_attention_backend("_native_math")
        pladis.apply(model, scale=2.0, registry=_registry(_flux_spec())).remove()
    finally:
        model.set_attention_backend("native")
        model.reset_attention_backend()
