"""Whether Triton can be used here (a module of its own: the back-ends and ``compiled`` both ask)."""

from __future__ import annotations

import functools
import importlib.util

__all__ = ["triton_available"]


@functools.cache
def triton_available() -> bool:
    """Whether the ``triton`` package imports (cached)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # a broken install counts as missing
        return False
    return True
