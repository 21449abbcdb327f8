"""The CLI's embedded default model, used when ``--model`` is omitted: the ONE place to change it.

For now it is a tiny random-weight SDXL-architecture pipeline built in-process from the real
diffusers/transformers classes (``pladis_adapter_sdxl.tiny_pipeline(seed=0)``): a placeholder until the
project ships a trained toy model. Its images are noise-like, but every command runs end to end on it
and writes real files, offline, in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the CLI can build without weights files: its backbone, call defaults and factory."""

    name: str
    backbone: str
    description: str
    call_defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, *, pag: bool = False) -> Any:
        """The pipeline (the PAG variant of it when ``pag``)."""
        from pladis_adapter_sdxl import tiny_pipeline

        return tiny_pipeline(seed=0, pag=pag)


EMBEDDED_DEFAULT = EmbeddedModel(
    name="embedded:tiny-sdxl",
    backbone="sdxl",
    description="tiny random-weight SDXL-architecture pipeline built in-process "
    "(placeholder until a trained toy model ships)",
    call_defaults={"num_inference_steps": 4, "height": 64, "width": 64},
)
