"""Pipelines whose denoising is split between two denoisers (Wan 2.2 A14B: ``transformer`` for the
high-noise steps, ``transformer_2`` below the pipeline's ``boundary_ratio``): one ``pladis.apply`` on the
pipeline puts PLADIS on both, with the same settings and adapter, and :class:`ExpertsHandle` removes both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SECOND_DENOISERS", "ExpertsHandle", "second_denoisers"]

#: Pipeline attributes holding a second denoiser next to ``transformer`` (diffusers' Wan 2.2 pipelines).
SECOND_DENOISERS = ("transformer_2",)


def second_denoisers(pipe: Any) -> dict[str, Any]:
    """The pipeline's second denoisers by attribute name (empty for a denoiser or a one-denoiser pipeline)."""
    import torch

    if isinstance(pipe, torch.nn.Module):
        return {}
    found = {name: getattr(pipe, name, None) for name in SECOND_DENOISERS}
    return {name: model for name, model in found.items() if isinstance(model, torch.nn.Module)}


@dataclass
class ExpertsHandle:
    """The handles of one ``apply`` on a two-denoiser pipeline: ``handles[0]`` on ``transformer``, then one
    per second denoiser. Settings and ``adapter`` are the first handle's; layer names of a second denoiser
    carry its attribute name (``transformer_2.blocks.0.attn2``)."""

    handles: list[Any]
    names: list[str]

    def __repr__(self) -> str:
        first = self.handles[0]
        window = "whole trajectory" if first.window is None else repr(first.window)
        return (f"{type(self).__name__}({'active' if self.active else 'inactive'}, adapter={first.adapter.name!r}, "
                f"{first.settings!r}, layers={len(self.modules)} of {len(self.handles)} denoisers, window={window})")

    def __getattr__(self, name: str) -> Any:
        if name in ("handles", "names"):
            raise AttributeError(name)
        return getattr(self.handles[0], name)

    def _merged(self, attribute: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for prefix, handle in zip(self.names, self.handles, strict=True):
            merged.update({f"{prefix}{key}": value for key, value in getattr(handle, attribute).items()})
        return merged

    @property
    def modules(self) -> dict[str, Any]:
        return self._merged("modules")

    @property
    def processors(self) -> dict[str, Any]:
        return self._merged("processors")

    @property
    def originals(self) -> dict[str, Any]:
        return self._merged("originals")

    @property
    def layer_names(self) -> list[str]:
        return list(self.modules)

    @property
    def active(self) -> bool:
        return all(handle.active for handle in self.handles)

    def remove(self) -> None:
        """Restore every denoiser's original processors (each handle's ``remove``). Idempotent."""
        for handle in self.handles:
            handle.remove()

    def _install(self) -> None:
        for handle in self.handles:
            handle._install()
