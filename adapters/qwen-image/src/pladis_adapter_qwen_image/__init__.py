"""PLADIS adapter for Qwen-Image, registered as the ``qwen-image`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_pipeline"]
