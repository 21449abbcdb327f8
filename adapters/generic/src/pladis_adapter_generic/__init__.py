"""PLADIS fallback adapter, registered as the ``generic`` backbone."""

from .adapter import SPEC

__all__ = ["SPEC"]
