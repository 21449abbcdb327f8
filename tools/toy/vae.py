"""An exact-by-construction identity ``AutoencoderKL``: the toy model's latents *are* its pixels.

Diffusers' SD 1.x pipelines need a ``vae``; the toy model is a pixel-space UNet, so its VAE is a one-level
``AutoencoderKL`` (no down/up-sampling, hence ``vae_scale_factor`` 1) with 3 latent channels and
``scaling_factor`` 1 whose weights are *set*, not trained, so that ``encode(x).mean == x`` and
``decode(z) == z`` up to ~1e-4 for values in [-3, 3]:

* every ResNet's ``conv2`` and every attention's output projection are zero, so those blocks pass their
  input through (residual connections);
* ``conv_in`` writes, for each RGB channel ``v``, the group ``[v, -v, M, -M]`` (M = 100) of 4 feature
  channels; the closing ``GroupNorm(3 groups)`` then sees mean exactly 0 and std ~ M / sqrt(2) (the M
  channels dominate), so it is a fixed rescaling that the norm's affine weight undoes; its bias shifts ``v``
  by +30, where SiLU is the identity to 1e-12, and ``conv_out`` subtracts the 30 again.

M = 100 keeps every intermediate (M**2 / 2 = 5000) inside float16's range.
"""

from __future__ import annotations

import math

import torch

M = 100.0
SHIFT = 30.0
LOGVAR = -30.0


def _center(conv: torch.nn.Conv2d, out_ch: int, in_ch: int, value: float) -> None:
    k = conv.kernel_size[0] // 2
    conv.weight.data[out_ch, in_ch, k, k] = value


def _identity_stack(conv_in, resnets_and_attn, norm, conv_out, rgb_out: list[int], extra_bias=None) -> None:
    for p in [*conv_in.parameters(), *conv_out.parameters()]:
        p.data.zero_()
    for v in range(3):
        _center(conv_in, 4 * v, v, 1.0)
        _center(conv_in, 4 * v + 1, v, -1.0)
        conv_in.bias.data[4 * v + 2] = M
        conv_in.bias.data[4 * v + 3] = -M
    for module in resnets_and_attn:
        for name, sub in module.named_modules():
            if name.endswith("conv2") or name.endswith("to_out.0"):
                sub.weight.data.zero_()
                sub.bias.data.zero_()
    norm.weight.data.zero_()
    norm.bias.data.zero_()
    for v in range(3):
        norm.weight.data[4 * v] = M / math.sqrt(2.0)
        norm.bias.data[4 * v] = SHIFT
        _center(conv_out, rgb_out[v], 4 * v, 1.0)
        conv_out.bias.data[rgb_out[v]] = -SHIFT
    for ch, value in (extra_bias or {}).items():
        conv_out.bias.data[ch] = value


def identity_vae(sample_size: int = 16):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), block_out_channels=(12,), layers_per_block=1,
                        latent_channels=3, norm_num_groups=3, sample_size=sample_size, scaling_factor=1.0)
    enc, dec = vae.encoder, vae.decoder
    with torch.no_grad():
        _identity_stack(enc.conv_in, [*enc.down_blocks, enc.mid_block], enc.conv_norm_out, enc.conv_out,
                        rgb_out=[0, 1, 2], extra_bias={3: LOGVAR, 4: LOGVAR, 5: LOGVAR})
        _identity_stack(dec.conv_in, [*dec.up_blocks, dec.mid_block], dec.conv_norm_out, dec.conv_out,
                        rgb_out=[0, 1, 2])
        for conv in (vae.quant_conv, vae.post_quant_conv):
            conv.weight.data.zero_()
            conv.bias.data.zero_()
            for c in range(conv.in_channels):
                conv.weight.data[c, c, 0, 0] = 1.0
    return vae.eval()
