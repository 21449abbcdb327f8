"""PLADIS adapter for SDXL-Lightning, registered as the ``sdxl-lightning`` backbone."""

from .adapter import DISTILLED, FILES, MODEL_ID, PRESETS, SPEC, load_pipeline, tiny_pipeline

__all__ = ["DISTILLED", "FILES", "MODEL_ID", "PRESETS", "SPEC", "load_pipeline", "tiny_pipeline"]
