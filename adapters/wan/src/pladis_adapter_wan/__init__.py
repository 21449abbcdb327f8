"""PLADIS adapter for Wan 2.1 / 2.2, registered as the ``wan`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_i2v_pipeline, tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_i2v_pipeline", "tiny_pipeline"]
