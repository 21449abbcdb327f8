"""PLADIS adapter for SDXL-Turbo, registered as the ``sdxl-turbo`` backbone."""

from .adapter import DISTILLED, MODEL_ID, PRESETS, SPEC, load_pipeline, tiny_pipeline

__all__ = ["DISTILLED", "MODEL_ID", "PRESETS", "SPEC", "load_pipeline", "tiny_pipeline"]
