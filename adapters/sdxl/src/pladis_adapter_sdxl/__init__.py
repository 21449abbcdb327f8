"""PLADIS adapter for Stable Diffusion XL, registered as the ``sdxl`` backbone."""

from .adapter import SDXL_DENOISER_CONFIG, SDXL_PIPELINES, SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SDXL_DENOISER_CONFIG", "SDXL_PIPELINES", "SPEC", "load_pipeline", "tiny_pipeline"]
