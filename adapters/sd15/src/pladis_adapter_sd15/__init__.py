"""PLADIS adapter for Stable Diffusion 1.x/2.x, registered as the ``sd15`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_pipeline"]
