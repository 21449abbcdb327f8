"""PLADIS adapter for SD3 / SD3.5, registered as the ``sd3`` backbone."""

from .adapter import SPEC, load_pipeline
from .tiny import tiny_pipeline

__all__ = ["SPEC", "load_pipeline", "tiny_pipeline"]
