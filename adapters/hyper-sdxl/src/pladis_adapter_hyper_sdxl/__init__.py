"""PLADIS adapter for Hyper-SDXL, registered as the ``hyper-sdxl`` backbone."""

from .adapter import DISTILLED, FILES, MODEL_ID, PRESETS, SPEC, load_pipeline, tiny_pipeline

__all__ = ["DISTILLED", "FILES", "MODEL_ID", "PRESETS", "SPEC", "load_pipeline", "tiny_pipeline"]
