"""PLADISAttnProcessor on tiny real diffusers models: the SD/SDXL UNet and the SANA transformer."""

from __future__ import annotations

import pytest
import torch
from diffusers import SanaTransformer2DModel, UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import pladis
from pladis.processor import norms_span_heads


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


def tiny_sana(qk_norm: str | None = "rms_norm_across_heads") -> SanaTransformer2DModel:
    torch.manual_seed(0)
    return SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=16,
        sample_size=8,
        qk_norm=qk_norm,
    ).eval()


def _cross_names(model: torch.nn.Module) -> list[str]:
    return [f"{n}.processor" for n, m in model.named_modules() if isinstance(m, Attention) and m.is_cross_attention]


def _install(model: torch.nn.Module, make) -> dict:
    originals = dict(model.attn_processors)
    procs = dict(originals)
    for name in _cross_names(model):
        procs[name] = make(originals[name])
    model.set_attn_processor(procs)
    return originals


def _unet_inputs():
    gen = torch.Generator().manual_seed(1)
    return dict(
        sample=torch.randn(2, 4, 8, 8, generator=gen),
        timestep=torch.tensor([10, 500]),
        encoder_hidden_states=torch.randn(2, 7, 16, generator=gen),
    )


def _sana_inputs():
    gen = torch.Generator().manual_seed(2)
    mask = torch.ones(2, 9)
    mask[0, 5:] = 0  # padded prompt: SANA turns this into an additive −10000 bias
    return dict(
        hidden_states=torch.randn(2, 4, 8, 8, generator=gen),
        encoder_hidden_states=torch.randn(2, 9, 16, generator=gen),
        encoder_attention_mask=mask,
        timestep=torch.tensor([10.0, 500.0]),
    )


@torch.no_grad()
def _run(model, inputs):
    return model(**inputs, return_dict=False)[0]


@pytest.mark.parametrize("build,inputs", [(tiny_unet, _unet_inputs), (tiny_sana, _sana_inputs)])
def test_scale_zero_is_bit_identical_and_scale_two_differs(build, inputs):
    model = build()
    args = inputs()
    reference = _run(model, args)
    originals = _install(model, lambda orig: pladis.PLADISAttnProcessor(scale=0.0))
    assert torch.equal(_run(model, args), reference)

    _install(model, lambda orig: pladis.PLADISAttnProcessor(scale=2.0))
    boosted = _run(model, args)
    assert torch.isfinite(boosted).all()
    assert (boosted - reference).abs().max() > 1e-4

    # self-attention processors were never touched
    for name, proc in model.attn_processors.items():
        if name in _cross_names(model):
            assert isinstance(proc, pladis.PLADISAttnProcessor)
        else:
            assert proc is originals[name]


@pytest.mark.parametrize("build,inputs", [(tiny_unet, _unet_inputs), (tiny_sana, _sana_inputs)])
def test_inactive_processor_delegates_to_the_original(build, inputs):
    model = build()
    args = inputs()
    reference = _run(model, args)
    calls = []

    def make(orig):
        def spy(*a, **kw):
            calls.append(type(orig).__name__)
            return orig(*a, **kw)

        spy.__call__ = spy  # a plain function stands in for a processor object
        return pladis.PLADISAttnProcessor(scale=0.0, original=spy)

    _install(model, make)
    assert torch.equal(_run(model, args), reference)
    assert len(calls) == len(_cross_names(model))


@torch.no_grad()
def test_sana_processor_matches_manual_eq15_with_the_encoder_mask():
    model = tiny_sana()
    attn = model.transformer_blocks[0].attn2
    assert norms_span_heads(attn)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, 16, generator=gen)
    text = torch.randn(2, 9, 16, generator=gen)
    bias = torch.zeros(2, 1, 9)
    bias[0, :, 5:] = -10000.0
    out = pladis.PLADISAttnProcessor(scale=2.0)(attn, x, text, bias)

    q = attn.norm_q(attn.to_q(x)).view(2, -1, 2, 8).transpose(1, 2)
    k = attn.norm_k(attn.to_k(text)).view(2, -1, 2, 8).transpose(1, 2)
    v = attn.to_v(text).view(2, -1, 2, 8).transpose(1, 2)
    mixed = pladis.pladis_attention(q, k, v, scale=2.0, attn_mask=bias.view(2, 1, 1, 9))
    expected = attn.to_out[0](mixed.transpose(1, 2).reshape(2, -1, 16))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    # the padded keys of the first prompt carry no weight: removing them changes nothing
    trimmed = pladis.PLADISAttnProcessor(scale=2.0)(attn, x[:1], text[:1, :5])
    torch.testing.assert_close(out[:1], trimmed, atol=1e-5, rtol=1e-5)


def test_unet_norms_are_per_head():
    unet = tiny_unet()
    attn = next(m for m in unet.modules() if isinstance(m, Attention) and m.is_cross_attention)
    assert not norms_span_heads(attn)
    per_head = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8, qk_norm="rms_norm")
    assert not norms_span_heads(per_head)
    across = Attention(query_dim=16, cross_attention_dim=8, heads=2, kv_heads=2, dim_head=8, qk_norm="layer_norm_across_heads")
    assert norms_span_heads(across)


@torch.no_grad()
@pytest.mark.parametrize("qk_norm", [None, "layer_norm", "rms_norm"])
def test_vae_style_module_with_group_norm_residual_and_4d_input(qk_norm):
    """Everything AttnProcessor2_0 does is reproduced: 4-D input, group norm, residual, rescale, norms."""
    torch.manual_seed(4)
    attn = Attention(
        query_dim=16,
        cross_attention_dim=12,
        heads=2,
        dim_head=8,
        norm_num_groups=4,
        residual_connection=True,
        rescale_output_factor=2.0,
        qk_norm=qk_norm,
        cross_attention_norm="layer_norm",
    ).eval()
    x = torch.randn(2, 16, 4, 4)
    text = torch.randn(2, 5, 12)
    mask = torch.ones(2, 5)
    mask[1, 3:] = 0
    bias = (1 - mask) * -10000.0
    for scale in (0.0,):
        expected = AttnProcessor2_0()(attn, x, text, bias.unsqueeze(1))
        got = pladis.PLADISAttnProcessor(scale=scale)(attn, x, text, bias.unsqueeze(1))
        assert torch.equal(got, expected)
    boosted = pladis.PLADISAttnProcessor(scale=2.0)(attn, x, text, bias.unsqueeze(1))
    assert boosted.shape == x.shape and torch.isfinite(boosted).all()
    assert (boosted - expected).abs().max() > 1e-4


def test_processor_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        pladis.PLADISAttnProcessor(alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        pladis.PLADISAttnProcessor(temperature=-1)
    with pytest.raises(ValueError, match="scale"):
        pladis.PLADISAttnProcessor(scale=float("nan"))
