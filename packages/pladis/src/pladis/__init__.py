"""PLADIS: boost text-to-image diffusion models at inference time with sparse cross-attention.

Eq. 15 of the paper: At_PLADIS = At_dense + λ · (At_α-entmax − At_dense), defaults α = 1.5, λ = 2.0.

    import pladis
    handle = pladis.apply(pipe)          # every cross-attention, λ = 2, α = 1.5
    image = pipe(prompt).images[0]
    handle.remove()                      # or pladis.remove(pipe), or `with pladis.enabled(pipe): ...`
"""

import importlib
import sys
import types
from typing import Any

#: Public name → submodule, imported on first access (``import pladis.cli`` for ``pladis --help`` stays
#: free of torch).
_EXPORTS = {
    "AdapterSummary": "adapters", "list_adapters": "adapters",
    "entmax": "alpha_entmax", "entmax15": "alpha_entmax", "entmax_threshold": "alpha_entmax",
    "sparsemax": "alpha_entmax",
    "PLADISHandle": "apply", "apply": "apply", "enabled": "apply", "remove": "apply",
    "pladis_attention": "attention",
    "PLADISAttnProcessor": "processor",
}

__all__ = [
    "AdapterSummary",
    "PLADISAttnProcessor",
    "PLADISHandle",
    "apply",
    "enabled",
    "entmax",
    "entmax15",
    "entmax_threshold",
    "list_adapters",
    "pladis_attention",
    "remove",
    "sparsemax",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """``pladis.apply`` is the function: importing the submodule ``pladis.apply`` (which sets the
    package attribute to the module) binds the function of that module instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "apply" and isinstance(value, types.ModuleType):
            value = value.apply
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
