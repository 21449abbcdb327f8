"""PLADIS adapter for DMD2 (SDXL), registered as the ``dmd2`` backbone."""

from .adapter import DISTILLED, FILES, MODEL_ID, PRESETS, SPEC, load_pipeline, tiny_pipeline

__all__ = ["DISTILLED", "FILES", "MODEL_ID", "PRESETS", "SPEC", "load_pipeline", "tiny_pipeline"]
