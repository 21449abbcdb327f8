"""SEG pipelines for SD 1.x/2.x and SDXL, built on diffusers' PAG pipelines (same batch, same combination).

diffusers' PAG pipelines run ``(uncond, cond, perturbed)`` in one UNet call and combine
``eps_uncond + cfg·(eps_cond − eps_uncond) + scale·(eps_cond − eps_perturbed)``, which is SEG's
``eps_cond + (cfg − 1)(eps_cond − eps_uncond) + seg·(eps_cond − eps_seg)`` (Hong 2024, with CFG). So the
SEG pipelines only swap PAG's identity-attention processors for query-blurring ones, map ``seg_scale`` onto
``pag_scale`` and tell the processors the latent size of the call (for non-square images).
"""

import math
import re
from typing import Any

import torch
from diffusers import StableDiffusionPAGPipeline, StableDiffusionXLPAGPipeline
from diffusers.models import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import (
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from .seg_processor import (
    DEFAULT_SEG_BLUR_SIGMA,
    SEGCFGSelfAttnProcessor2_0,
    SEGSelfAttnProcessor2_0,
    _SEGSelfAttnProcessorBase,
    check_blur_sigma,
)

__all__ = ["SEGMixin", "StableDiffusionSEGPipeline", "StableDiffusionXLSEGPipeline"]


def _check_layers(layers: Any) -> list[str]:
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    for layer in layers:
        if not isinstance(layer, str):
            raise ValueError(f"seg_applied_layers must be a string or a list of strings; got {layer!r}")
        try:
            re.compile(layer)
        except re.error as err:
            raise ValueError(f"seg_applied_layers: {layer!r} is not a valid regular expression ({err})") from None
    return layers


def _select_self_attention(model: torch.nn.Module, layers: list[str]) -> dict[str, Attention]:
    """Self-attention modules whose name matches one of ``layers`` (PAG's ``pag_applied_layers`` rules).

    A layer id is a regex searched in the module name ("mid", "down_blocks.1", "up_blocks.0.attentions.1");
    a trailing number must match the trailing number of the name. Cross-attention is never selected.
    """
    self_attn = {n: m for n, m in model.named_modules() if isinstance(m, Attention) and not m.is_cross_attention}
    selected: dict[str, Attention] = {}
    for layer in layers:
        last = layer.split(".")[-1]
        found = {
            name: module
            for name, module in self_attn.items()
            if re.search(layer, name) is not None
            and not (last.isnumeric() and name.split(".")[-1].isnumeric() and last == name.split(".")[-1])
        }
        if not found:
            examples = ", ".join(repr(n) for n in list(self_attn)[:3]) or "none"
            raise ValueError(
                f"seg_applied_layers: no self-attention layer of {type(model).__name__} matches {layer!r} "
                f"(self-attention layers look like {examples}; 'mid', 'down', 'up' select whole blocks)"
            )
        selected.update(found)
    return selected


def _check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 disables SEG); got {value!r}")
    return float(value)


class SEGMixin:
    """Turns a diffusers PAG pipeline into a SEG pipeline; put it before the PAG class in the bases.

    Needs the PAG pipeline's flow: ``prepare_latents`` runs before ``_set_pag_attn_processor``.
    """

    _seg_blur_sigma: float = DEFAULT_SEG_BLUR_SIGMA
    _seg_latent_size: tuple[int, int] | None = None

    def set_seg_applied_layers(self, seg_applied_layers: str | list[str]) -> None:
        """Select the self-attention layers whose queries SEG blurs (same syntax as ``pag_applied_layers``)."""
        self.set_pag_applied_layers(seg_applied_layers)

    def set_pag_applied_layers(self, pag_applied_layers: str | list[str], pag_attn_processors: Any = None):
        """PAG's setter, defaulting to fresh SEG processors and checking the layers against the UNet now."""
        layers = _check_layers(pag_applied_layers)
        denoiser = getattr(self, "unet", None)
        if denoiser is not None:
            _select_self_attention(denoiser, layers)
        if pag_attn_processors is None:
            pag_attn_processors = (SEGCFGSelfAttnProcessor2_0(), SEGSelfAttnProcessor2_0())
        super().set_pag_applied_layers(layers, pag_attn_processors)

    def _set_pag_attn_processor(self, pag_applied_layers, do_classifier_free_guidance):
        if self._pag_attn_processors is None:
            raise ValueError("No SEG attention processors set; call `set_seg_applied_layers` first.")
        processor = self._pag_attn_processors[0 if do_classifier_free_guidance else 1]
        if isinstance(processor, _SEGSelfAttnProcessorBase):
            processor.blur_sigma = self._seg_blur_sigma
            processor.latent_size = self._seg_latent_size
        for module in _select_self_attention(self.unet, _check_layers(pag_applied_layers)).values():
            module.set_processor(processor)

    def prepare_latents(self, *args, **kwargs):
        latents = super().prepare_latents(*args, **kwargs)
        self._seg_latent_size = tuple(latents.shape[-2:])
        return latents

    @property
    def seg_applied_layers(self) -> list[str]:
        return self.pag_applied_layers

    @property
    def seg_scale(self) -> float:
        return self._pag_scale

    @property
    def seg_adaptive_scale(self) -> float:
        return self._pag_adaptive_scale

    @property
    def seg_blur_sigma(self) -> float:
        return self._seg_blur_sigma

    @property
    def do_smoothed_energy_guidance(self) -> bool:
        return self.do_perturbed_attention_guidance

    @property
    def seg_attn_processors(self) -> dict[str, Any]:
        """The SEG processors installed right now, by processor name (empty outside a call)."""
        return self.pag_attn_processors

    def __call__(
        self,
        *args: Any,
        seg_scale: float = 3.0,
        seg_adaptive_scale: float = 0.0,
        seg_blur_sigma: float = DEFAULT_SEG_BLUR_SIGMA,
        **kwargs: Any,
    ):
        """Generate with SEG; every other argument is the PAG pipeline's (``pag_scale`` and
        ``pag_adaptive_scale`` are replaced by the SEG ones).

        Args:
            seg_scale: weight of ``(eps_cond − eps_seg)`` (reference default 3.0); 0 gives the plain pipeline.
            seg_adaptive_scale: PAG's linear decay, ``max(0, seg_scale − seg_adaptive_scale·(1000 − t))``.
            seg_blur_sigma: std of the Gaussian query blur in latent tokens of each selected layer; values
                above 9999 (or ``float("inf")``) replace every query by the mean query. The default 9999999.0
                (infinite blur) is the reference implementation's (SusungHong/SEG-SDXL); its README example
                uses 100.0 and suggests stepping σ exponentially (1, 4, 16, …).
        """
        for name in ("pag_scale", "pag_adaptive_scale"):
            if name in kwargs:
                seg_name = name.replace("pag", "seg")
                raise TypeError(f"{type(self).__name__} takes `{seg_name}`, not `{name}`")
        self._seg_blur_sigma = check_blur_sigma(seg_blur_sigma, "seg_blur_sigma")
        seg_scale = _check_scale(seg_scale, "seg_scale")
        seg_adaptive_scale = _check_scale(seg_adaptive_scale, "seg_adaptive_scale")
        self._seg_latent_size = None
        saved = self.unet.attn_processors
        try:
            return super().__call__(*args, pag_scale=seg_scale, pag_adaptive_scale=seg_adaptive_scale, **kwargs)
        except BaseException:
            self.unet.set_attn_processor(saved)  # PAG restores only when the call completes
            raise


class StableDiffusionSEGPipeline(SEGMixin, StableDiffusionPAGPipeline):
    """Stable Diffusion 1.x/2.x with Smoothed Energy Guidance (Hong 2024) on ``seg_applied_layers``.

    Example::

        pipe = StableDiffusionSEGPipeline.from_pipe(sd_pipe, seg_applied_layers="mid")
        image = pipe(prompt, guidance_scale=7.5, seg_scale=3.0, seg_blur_sigma=10.0).images[0]
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        safety_checker: StableDiffusionSafetyChecker,
        feature_extractor: CLIPImageProcessor,
        image_encoder: CLIPVisionModelWithProjection = None,
        requires_safety_checker: bool = True,
        seg_applied_layers: str | list[str] = "mid",
    ):
        super().__init__(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=safety_checker,
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            requires_safety_checker=requires_safety_checker,
            pag_applied_layers=seg_applied_layers,
        )


class StableDiffusionXLSEGPipeline(SEGMixin, StableDiffusionXLPAGPipeline):
    """Stable Diffusion XL with Smoothed Energy Guidance (Hong 2024) on ``seg_applied_layers``.

    Example::

        pipe = StableDiffusionXLSEGPipeline.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0")
        image = pipe(prompt, guidance_scale=5.0, seg_scale=3.0).images[0]  # σ = ∞ (mean query)
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: CLIPVisionModelWithProjection = None,
        feature_extractor: CLIPImageProcessor = None,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: bool | None = None,
        seg_applied_layers: str | list[str] = "mid",
    ):
        super().__init__(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
            add_watermarker=add_watermarker,
            pag_applied_layers=seg_applied_layers,
        )
