"""PLADIS adapter for AnimateDiff, registered as the ``animatediff`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_pipeline"]
