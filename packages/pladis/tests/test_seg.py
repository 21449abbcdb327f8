"""SEG (Smoothed Energy Guidance): processors against independent references, pipelines on tiny SD1.5/SDXL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import pladis
from pladis.guidance import (
    SEGCFGSelfAttnProcessor2_0,
    SEGSelfAttnProcessor2_0,
    StableDiffusionSEGPipeline,
    StableDiffusionXLSEGPipeline,
    gaussian_blur_2d,
)
from pladis.guidance.seg_processor import token_grid
from pladis.processor import PLADISAttnProcessor
from pladis_adapter_sd15 import tiny_pipeline as tiny_sd15
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl

MID_ATTN1 = "mid_block.attentions.0.transformer_blocks.0.attn1"
MID_ATTN2 = "mid_block.attentions.0.transformer_blocks.0.attn2"


# ---------------------------------------------------------------- independent references


def reference_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Explicit 2-D Gaussian: hand-built (k_h, k_w) kernel, hand-written reflect indexing, direct summation."""
    _, _, h, w = maps.shape
    six = math.ceil(6 * sigma)
    k = six + 1 if six % 2 == 0 else six
    kh, kw = min(k, h if h % 2 else h + 1), min(k, w if w % 2 else w + 1)
    rh, rw = kh // 2, kw // 2
    kernel = torch.tensor(
        [[math.exp(-((i - rh) ** 2 + (j - rw) ** 2) / (2 * sigma**2)) for j in range(kw)] for i in range(kh)],
        dtype=torch.float64,
    )
    kernel /= kernel.sum()

    def reflect(p: int, n: int) -> int:
        p = -p if p < 0 else p
        return 2 * (n - 1) - p if p >= n else p

    x = maps.double()
    out = torch.zeros_like(x)
    for y in range(h):
        for xx in range(w):
            for i in range(kh):
                for j in range(kw):
                    out[..., y, xx] += kernel[i, j] * x[..., reflect(y + i - rh, h), reflect(xx + j - rw, w)]
    return out.to(maps.dtype)


def reference_attention(attn: Attention, x: torch.Tensor, weak_query) -> torch.Tensor:
    """Self-attention written out (explicit softmax), with ``weak_query`` applied to the queries of the last part."""
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    q = weak_query(q)
    b, n, c = q.shape
    heads, d = attn.heads, c // attn.heads
    q, k, v = (t.view(b, n, heads, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, c)
    return attn.to_out[1](attn.to_out[0](out))


def _attention(**kwargs) -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8, **kwargs).eval()


# ---------------------------------------------------------------- blur and processors


@pytest.mark.parametrize("shape", [(2, 3, 6, 10), (1, 2, 5, 5), (1, 2, 2, 9)])
def test_gaussian_blur_sigma2_equals_reference_2d_conv(shape):
    maps = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(gaussian_blur_2d(maps, 2.0), reference_blur(maps, 2.0), atol=1e-5, rtol=1e-5)


def test_token_grid_non_square_and_errors():
    assert token_grid(8 * 16, (8, 16)) == (8, 16)
    assert token_grid(4 * 8, (8, 16)) == (4, 8)
    assert token_grid(64, (8, 32)) == (4, 16)  # 64 tokens are square-able, but the layer's grid is 4x16
    assert token_grid(2 * 3, (7, 9)) == (2, 3)  # ceil halving, like stride-2 convolutions
    assert token_grid(49, None) == (7, 7)
    with pytest.raises(ValueError, match="latent_size"):
        token_grid(32, None)
    with pytest.raises(ValueError, match="8x8"):
        token_grid(24, (8, 8))


@torch.no_grad()
def test_cfg_processor_sigma2_equals_reference_on_non_square_grid():
    attn = _attention()
    x = torch.randn(3, 4 * 16, 16, generator=torch.Generator().manual_seed(2))
    proc = SEGCFGSelfAttnProcessor2_0(blur_sigma=2.0, latent_size=(8, 32))  # layer at 1/2 of an 8x32 latent

    def blur_last_third(q):
        weak = q[2:].transpose(1, 2).reshape(1, 16, 4, 16)
        return torch.cat([q[:2], reference_blur(weak, 2.0).flatten(2).transpose(1, 2)])

    out = proc(attn, x)
    torch.testing.assert_close(out, reference_attention(attn, x, blur_last_third), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:2], AttnProcessor2_0()(attn, x[:2]), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("sigma", [float("inf"), 9999999.0, 1e5])
@torch.no_grad()
def test_processor_infinite_sigma_equals_mean_query(sigma):
    attn = _attention()
    x = torch.randn(4, 6 * 5, 16, generator=torch.Generator().manual_seed(3))
    out = SEGSelfAttnProcessor2_0(blur_sigma=sigma)(attn, x)  # no grid needed for the mean: 30 tokens is fine

    def mean_second_half(q):
        return torch.cat([q[:2], q[2:].mean(dim=1, keepdim=True).expand(-1, q.shape[1], -1)])

    torch.testing.assert_close(out, reference_attention(attn, x, mean_second_half), atol=1e-5, rtol=1e-5)
    # one query for all tokens: every token of the weak half gets the same output
    torch.testing.assert_close(out[2:], out[2:, :1].expand_as(out[2:]), atol=1e-6, rtol=0)
    assert not torch.allclose(out[:2], out[:2, :1].expand_as(out[:2]), atol=1e-3)


@pytest.mark.parametrize("sigma", [1e-4, float("inf")])
@torch.no_grad()
def test_processor_keeps_every_attnprocessor2_0_feature(sigma):
    """4-D input, group norm, q/k norm, residual and output rescale behave as in AttnProcessor2_0."""
    attn = _attention(norm_num_groups=4, qk_norm="layer_norm", residual_connection=True, rescale_output_factor=2.0)
    x = torch.randn(3, 16, 3, 5, generator=torch.Generator().manual_seed(4))
    out = SEGCFGSelfAttnProcessor2_0(blur_sigma=sigma)(attn, x)
    expected = AttnProcessor2_0()(attn, x)
    assert out.shape == x.shape
    torch.testing.assert_close(out[:2], expected[:2], atol=1e-6, rtol=1e-6)
    if sigma < 1:  # kernel of size 1: no blur at all
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    else:
        assert (out[2] - expected[2]).abs().max() > 1e-3


def test_processor_bad_arguments():
    with pytest.raises(ValueError, match="blur_sigma"):
        SEGCFGSelfAttnProcessor2_0(blur_sigma=-1.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        SEGCFGSelfAttnProcessor2_0(blur_sigma=float("nan"))
    with pytest.raises(ValueError, match="3 equal parts"):
        SEGCFGSelfAttnProcessor2_0(blur_sigma=2.0)(_attention(), torch.randn(2, 16, 16))


# ---------------------------------------------------------------- pipelines


def _quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sd15():
    return _quiet(tiny_sd15())


@pytest.fixture(scope="module")
def sdxl():
    return _quiet(tiny_sdxl())


def _seg(base, **kwargs):
    cls = StableDiffusionXLSEGPipeline if isinstance(base, StableDiffusionXLPipeline) else StableDiffusionSEGPipeline
    return _quiet(cls.from_pipe(base, **kwargs))


def _run(pipe, height=32, width=32, **kwargs) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    return pipe("a red circle", num_inference_steps=2, height=height, width=width, output_type="np",
                generator=generator, **kwargs).images


@pytest.mark.parametrize("backbone", ["sd15", "sdxl"])
@pytest.mark.parametrize("size", [(32, 32), (32, 64), (64, 32)])
def test_seg_square_and_non_square_changes_the_cfg_image(request, backbone, size):
    base = request.getfixturevalue(backbone)
    seg = _seg(base)
    cfg = _run(base, *size)
    installed = []

    def spy(pipe, step, t, kwargs):
        installed.extend(pipe.seg_attn_processors.values())
        return kwargs

    images = {s: _run(seg, *size, seg_blur_sigma=s, callback_on_step_end=spy) for s in (2.0, float("inf"))}
    for image in images.values():
        assert image.shape == (1, *size, 3) and np.isfinite(image).all()
        assert np.abs(image - cfg).max() > 1e-4
    assert np.abs(images[2.0] - images[float("inf")]).max() > 1e-5
    # the pipeline told the processors the latent size of the call (tiny VAE: 4 px per latent)
    assert installed and {p.latent_size for p in installed} == {(size[0] // 4, size[1] // 4)}


def test_unet_called_once_per_step_with_the_seg_batch(sd15):
    seg = _seg(sd15)
    batches: list[int] = []
    hook = seg.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        _run(seg, guidance_scale=7.5)
        assert batches == [3, 3]  # (uncond, cond, weak), one call per step
        batches.clear()
        _run(seg, guidance_scale=1.0)
        assert batches == [2, 2]  # SEG alone: (cond, weak)
    finally:
        hook.remove()


@pytest.mark.parametrize("backbone", ["sd15", "sdxl"])
def test_sigma_to_zero_gives_the_cfg_image_and_weak_branch_equals_cond(request, backbone):
    base = request.getfixturevalue(backbone)
    seg = _seg(base)
    outputs: list[torch.Tensor] = []
    hook = seg.unet.register_forward_hook(lambda module, args, out: outputs.append(out[0].clone()))
    try:
        image = _run(seg, seg_scale=3.0, seg_blur_sigma=1e-4)
    finally:
        hook.remove()
    for out in outputs:
        _, cond, weak = out.chunk(3)
        torch.testing.assert_close(weak, cond, atol=1e-6, rtol=0)
    np.testing.assert_allclose(image, _run(base), atol=1e-5)  # base: the plain (non-PAG) diffusers pipeline


@pytest.mark.parametrize("backbone", ["sd15", "sdxl"])
def test_seg_scale_zero_and_adaptive_decay_reproduce_the_plain_pipeline(request, backbone):
    base = request.getfixturevalue(backbone)
    seg = _seg(base)
    plain = _run(base)
    np.testing.assert_allclose(_run(seg, seg_scale=0.0), plain, atol=1e-6)
    # max(0, 3 - 1.0 * (1000 - t)) is 0 at both steps: SEG is computed but weighted 0
    np.testing.assert_allclose(_run(seg, seg_scale=3.0, seg_adaptive_scale=1.0, seg_blur_sigma=2.0), plain, atol=1e-5)


def test_processors_restored_after_the_call_and_after_an_error(sd15):
    seg = _seg(sd15)
    before = dict(seg.unet.attn_processors)
    seen = {}

    def spy(pipe, step, t, kwargs):
        seen.update(pipe.unet.attn_processors)
        return kwargs

    _run(seg, callback_on_step_end=spy)
    assert isinstance(seen[f"{MID_ATTN1}.processor"], SEGCFGSelfAttnProcessor2_0)
    assert all(type(p) is AttnProcessor2_0 for n, p in seen.items() if n != f"{MID_ATTN1}.processor")
    assert all(seg.unet.attn_processors[n] is p for n, p in before.items())

    def boom(pipe, step, t, kwargs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _run(seg, callback_on_step_end=boom)
    assert all(seg.unet.attn_processors[n] is p for n, p in before.items())


def test_bad_pipeline_arguments_name_the_parameter(sd15):
    seg = _seg(sd15)
    with pytest.raises(ValueError, match="seg_blur_sigma"):
        _run(seg, seg_blur_sigma=-1.0)
    with pytest.raises(ValueError, match="seg_scale"):
        _run(seg, seg_scale=-1.0)
    with pytest.raises(TypeError, match="seg_scale"):
        _run(seg, pag_scale=2.0)
    with pytest.raises(ValueError, match="seg_applied_layers"):
        _seg(sd15, seg_applied_layers="no_such_block")
    with pytest.raises(ValueError, match="seg_applied_layers"):
        seg.set_seg_applied_layers(["mid", 3])
    with pytest.raises(ValueError, match="seg_applied_layers"):
        seg.set_seg_applied_layers("attn2(")


def test_applied_layers_select_self_attention_only(sd15):
    seg = _seg(sd15, seg_applied_layers=["down_blocks.0", "up"])
    seen = {}
    _run(seg, callback_on_step_end=lambda p, i, t, kw: seen.update(p.unet.attn_processors) or kw)
    segged = {n.removesuffix(".processor") for n, p in seen.items() if isinstance(p, SEGCFGSelfAttnProcessor2_0)}
    assert segged == {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    }


def test_pladis_and_seg_compose_in_both_orders(sd15):
    seg_only = _run(_seg(sd15))
    during = {}

    def spy(pipe, step, t, kwargs):
        during.update(pipe.unet.attn_processors)
        return kwargs

    # PLADIS first, then the SEG pipeline from the patched one
    handle = pladis.apply(sd15)
    try:
        seg = _seg(sd15)
        first = _run(seg, callback_on_step_end=spy)
        assert isinstance(during[f"{MID_ATTN1}.processor"], SEGCFGSelfAttnProcessor2_0)
        assert isinstance(during[f"{MID_ATTN2}.processor"], PLADISAttnProcessor)
        assert all(isinstance(p, PLADISAttnProcessor) for n, p in sd15.unet.attn_processors.items() if "attn2" in n)
        assert handle.active
    finally:
        pladis.remove(sd15)
    assert np.abs(first - seg_only).max() > 1e-5  # PLADIS acted

    # SEG pipeline first, then PLADIS on it
    seg = _seg(sd15)
    pladis.apply(seg)
    try:
        second = _run(seg)
    finally:
        assert pladis.remove(seg)
    np.testing.assert_allclose(second, first, atol=1e-6)
    assert all(type(p) is AttnProcessor2_0 for p in sd15.unet.attn_processors.values())
    np.testing.assert_allclose(_run(seg), seg_only, atol=1e-6)


def test_from_pretrained_loads_a_saved_pipeline(sd15, tmp_path):
    sd15.save_pretrained(tmp_path)
    seg = _quiet(StableDiffusionSEGPipeline.from_pretrained(tmp_path, seg_applied_layers="mid"))
    assert isinstance(seg, StableDiffusionSEGPipeline) and seg.seg_applied_layers == ["mid"]
    np.testing.assert_allclose(_run(seg, seg_blur_sigma=2.0), _run(_seg(sd15), seg_blur_sigma=2.0), atol=1e-6)

