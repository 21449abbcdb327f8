"""Smoothed Energy Guidance (SEG) self-attention processors (Hong 2024, arXiv:2408.00760).

SEG's weak prediction is the same denoiser with the *queries* of chosen self-attention layers blurred by a
2-D Gaussian of std ``σ`` over the token grid (blurring the queries blurs the attention
weights, i.e. smooths the energy landscape); ``σ`` above :data:`INF_BLUR_THRESHOLD` replaces every query by
the mean query (uniform attention). The processors below are ``AttnProcessor2_0`` with that one extra step,
applied only to the last part of the batch, the layout diffusers' PAG pipelines use: ``(uncond, cond, weak)``
with CFG, ``(cond, weak)`` without.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..processor import run_attention

__all__ = [
    "DEFAULT_SEG_BLUR_SIGMA",
    "INF_BLUR_THRESHOLD",
    "SEGCFGSelfAttnProcessor2_0",
    "SEGSelfAttnProcessor2_0",
    "check_blur_sigma",
    "gaussian_blur_2d",
    "gaussian_kernel_size",
    "token_grid",
]

#: σ above this means "infinite blur" (every query becomes the mean query); the threshold of the reference
#: implementation (SusungHong/SEG-SDXL ``pipeline_seg.py``) and of diffusers' ``SmoothedEnergyGuidance``.
INF_BLUR_THRESHOLD = 9999.0
#: Default σ of the reference pipeline's ``__call__`` (and of diffusers' modular guider): infinite blur.
DEFAULT_SEG_BLUR_SIGMA = 9999999.0


def check_blur_sigma(sigma: Any, name: str = "seg_blur_sigma") -> float:
    """Return σ as a float if it is a number ≥ 0 (``inf`` allowed), else raise ``ValueError`` naming ``name``."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise ValueError(f"{name} must be a real number >= 0 (inf = mean query); got {sigma!r}")
    value = float(sigma)
    if math.isnan(value) or value < 0.0:
        raise ValueError(
            f"{name} must be >= 0 (0 = no blur, > {INF_BLUR_THRESHOLD:g} or inf = mean query); got {sigma!r}"
        )
    return value


def gaussian_kernel_size(sigma: float) -> int:
    """Odd kernel size ``ceil(6σ) + 1`` (minus one when that is even), as in the SEG reference code."""
    six = math.ceil(6.0 * sigma)
    return six + 1 - six % 2


def _kernel_1d(sigma: float, length: int, device: torch.device) -> torch.Tensor:
    # Clip to the axis like the reference (``n`` when odd, ``n + 1`` when even) so reflect padding is valid.
    size = min(gaussian_kernel_size(sigma), length - (length % 2 - 1))
    half = (size - 1) / 2
    x = torch.linspace(-half, half, steps=size, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma) ** 2)
    return (pdf / pdf.sum()).to(device=device, dtype=torch.float32)


def gaussian_blur_2d(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``(B, C, h, w)`` maps per channel with a Gaussian of std ``σ`` (reflect padding, separable).

    The kernel is the reference's ``ceil(6σ)+1`` (odd) clipped to each axis of the map, so non-square maps get
    a ``k_h × k_w`` kernel; σ above :data:`INF_BLUR_THRESHOLD` returns the per-channel spatial mean instead.
    Computed in float32, returned in the input dtype.
    """
    sigma = check_blur_sigma(sigma, "sigma")
    if images.ndim != 4:
        raise ValueError(f"gaussian_blur_2d expects (B, C, h, w) maps; got shape {tuple(images.shape)}")
    if sigma > INF_BLUR_THRESHOLD:
        return images.mean(dim=(-2, -1), keepdim=True).expand_as(images).clone()
    if gaussian_kernel_size(sigma) == 1:
        return images.clone()
    channels, height, width = images.shape[1:]
    out = images.float()
    k_w = _kernel_1d(sigma, width, images.device)
    k_h = _kernel_1d(sigma, height, images.device)
    out = F.pad(out, (k_w.numel() // 2,) * 2 + (0, 0), mode="reflect")
    out = F.conv2d(out, k_w.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0) + (k_h.numel() // 2,) * 2, mode="reflect")
    out = F.conv2d(out, k_h.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return out.to(images.dtype)


def token_grid(num_tokens: int, latent_size: tuple[int, int] | None) -> tuple[int, int]:
    """The ``(h, w)`` grid of ``num_tokens`` row-major query tokens of a layer of a UNet run on ``latent_size``.

    A UNet layer sees the latent downsampled ``k`` times by stride-2 convolutions, ``(ceil(H/2^k), ceil(W/2^k))``;
    the ``k`` whose grid has exactly ``num_tokens`` tokens is taken. Without a latent size only a square grid can
    be inferred. Raises ``ValueError`` when no grid fits.
    """
    if latent_size is None:
        side = math.isqrt(num_tokens)
        if side * side == num_tokens:
            return side, side
        raise ValueError(
            f"SEG cannot arrange {num_tokens} query tokens on a 2-D grid without the latent size: the map is not "
            "square. Set `latent_size=(latent_height, latent_width)` on the processor (the SEG pipelines do this)."
        )
    height, width = latent_size
    h, w = height, width
    while h * w >= num_tokens:
        if h * w == num_tokens:
            return h, w
        if h == w == 1:
            break
        h, w = -(-h // 2), -(-w // 2)
    raise ValueError(
        f"SEG: {num_tokens} query tokens match no downsampling of the {height}x{width} latent "
        "(expected ceil(H/2^k) * ceil(W/2^k) tokens); is `latent_size` the latent of this call?"
    )


class _SEGSelfAttnProcessorBase:
    """``AttnProcessor2_0`` whose queries of the last ``1/_parts`` of the batch are Gaussian-blurred."""

    _parts: int = 0
    _layout: str = ""

    def __init__(self, blur_sigma: float = DEFAULT_SEG_BLUR_SIGMA, latent_size: tuple[int, int] | None = None):
        self.blur_sigma = blur_sigma
        self.latent_size = latent_size

    @property
    def blur_sigma(self) -> float:
        """σ of the query blur (0 = none, > :data:`INF_BLUR_THRESHOLD` = mean query)."""
        return self._blur_sigma

    @blur_sigma.setter
    def blur_sigma(self, value: float) -> None:
        self._blur_sigma = check_blur_sigma(value, "blur_sigma")

    @property
    def latent_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the latent of the current call, to place 3-D tokens on their grid."""
        return self._latent_size

    @latent_size.setter
    def latent_size(self, value: tuple[int, int] | None) -> None:
        if value is not None:
            value = tuple(int(v) for v in value)
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"latent_size must be (height, width) with positive sides; got {value!r}")
        self._latent_size = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(blur_sigma={self.blur_sigma!r}, latent_size={self.latent_size!r})"

    def _smooth_weak_queries(self, query: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
        batch = query.shape[0]
        if batch % self._parts:
            raise ValueError(
                f"{type(self).__name__} expects a batch made of {self._parts} equal parts {self._layout}; "
                f"got batch size {batch}"
            )
        start = batch - batch // self._parts
        weak = query[start:]
        sigma = self.blur_sigma
        if sigma > INF_BLUR_THRESHOLD:
            weak = weak.mean(dim=1, keepdim=True).expand_as(weak)
        elif gaussian_kernel_size(sigma) > 1:
            h, w = grid if grid is not None else token_grid(weak.shape[1], self.latent_size)
            maps = weak.transpose(1, 2).reshape(weak.shape[0], weak.shape[2], h, w)
            weak = gaussian_blur_2d(maps, sigma).flatten(2).transpose(1, 2)
        else:
            return query
        return torch.cat([query[:start], weak])

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return run_attention(
            attn,
            hidden_states,
            encoder_hidden_states,
            attention_mask,
            temb,
            attend=_sdpa,
            transform_query=self._smooth_weak_queries,
        )


def _sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The exact SDPA call of diffusers' ``AttnProcessor2_0``."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False)


class SEGCFGSelfAttnProcessor2_0(_SEGSelfAttnProcessorBase):
    """SEG with CFG: batch ``(uncond, cond, weak)``; blurs the queries of the last third (cf. ``PAGCFG…``)."""

    _parts = 3
    _layout = "(uncond, cond, weak)"


class SEGSelfAttnProcessor2_0(_SEGSelfAttnProcessorBase):
    """SEG without CFG: batch ``(cond, weak)``; blurs the queries of the second half (cf. ``PAGIdentity…``)."""

    _parts = 2
    _layout = "(cond, weak)"
