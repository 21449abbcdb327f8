"""The sample plugin's custom pipeline (imported only when a tiny pipeline is built)."""

from __future__ import annotations

from diffusers import StableDiffusionPipeline


class SampleTextToImagePipeline(StableDiffusionPipeline):
    """A custom pipeline class no built-in adapter knows by name."""


def tiny_pipeline(seed: int = 0) -> SampleTextToImagePipeline:
    from pladis_adapter_sd15 import tiny_pipeline as sd15_tiny

    return SampleTextToImagePipeline(**sd15_tiny(seed).components)
