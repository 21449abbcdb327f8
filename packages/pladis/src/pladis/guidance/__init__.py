"""Guidance methods that compose with PLADIS. Smoothed Energy Guidance (SEG, Hong 2024) for SD1.5 and SDXL::

    from pladis.guidance import StableDiffusionXLSEGPipeline

    pipe = StableDiffusionXLSEGPipeline.from_pipe(sdxl_pipe, seg_applied_layers="mid")
    image = pipe(prompt, guidance_scale=5.0, seg_scale=3.0, seg_blur_sigma=10.0).images[0]

The pipelines are diffusers' PAG pipelines with SEG's query-blurring self-attention processors; PLADIS
(``pladis.apply``) acts on cross-attention only, so the two stack in either order. Names load lazily: importing
this package does not import diffusers.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .seg_pipelines import SEGMixin, StableDiffusionSEGPipeline, StableDiffusionXLSEGPipeline
    from .seg_processor import (
        DEFAULT_SEG_BLUR_SIGMA,
        INF_BLUR_THRESHOLD,
        SEGCFGSelfAttnProcessor2_0,
        SEGSelfAttnProcessor2_0,
        gaussian_blur_2d,
    )

_EXPORTS = {
    "DEFAULT_SEG_BLUR_SIGMA": "seg_processor",
    "INF_BLUR_THRESHOLD": "seg_processor",
    "SEGCFGSelfAttnProcessor2_0": "seg_processor",
    "SEGSelfAttnProcessor2_0": "seg_processor",
    "gaussian_blur_2d": "seg_processor",
    "SEGMixin": "seg_pipelines",
    "StableDiffusionSEGPipeline": "seg_pipelines",
    "StableDiffusionXLSEGPipeline": "seg_pipelines",
}

__all__ = [
    "DEFAULT_SEG_BLUR_SIGMA",
    "INF_BLUR_THRESHOLD",
    "SEGCFGSelfAttnProcessor2_0",
    "SEGMixin",
    "SEGSelfAttnProcessor2_0",
    "StableDiffusionSEGPipeline",
    "StableDiffusionXLSEGPipeline",
    "gaussian_blur_2d",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
