"""PLADIS adapter for PixArt-Sigma, registered as the ``pixart`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_pipeline"]
