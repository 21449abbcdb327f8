"""The CLI's embedded default model, used when ``--model`` is omitted: the ONE place to change it.

It is the project's trained toy model, package data of ``pladis`` (``pladis/toy_model``: an SD 1.x
pipeline of 4.5 MB with a 16 px pixel-space UNet, 2-layer CLIP text encoder and identity VAE, trained by
``tools/toy/train.py``), so a wheel install has it too; ``PLADIS_TOY_MODEL`` points elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import UsageError

TOY_MODEL_ENV = "PLADIS_TOY_MODEL"
#: The toy model's folder inside the installed ``pladis`` package (package data of the wheel).
TOY_MODEL_PACKAGE_DIR = "toy_model"


def toy_model_dir() -> Path:
    """The toy model folder: ``$PLADIS_TOY_MODEL`` or the package data ``pladis/toy_model`` (a usage
    error if absent)."""
    configured = os.environ.get(TOY_MODEL_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parents[1] / TOY_MODEL_PACKAGE_DIR
    if not (path / "model_index.json").is_file():
        raise UsageError(
            f"the embedded toy model is not at {str(path)!r} (it ships inside the pladis package as "
            f"{TOY_MODEL_PACKAGE_DIR}/; set {TOY_MODEL_ENV} to its folder or pass --model)"
        )
    return path


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the CLI can use without a ``--model``: its backbone, call defaults and factory."""

    name: str
    backbone: str
    description: str
    call_defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, *, pag: bool = False) -> Any:
        """The pipeline (the PAG variant of it when ``pag``)."""
        import diffusers

        cls = diffusers.StableDiffusionPAGPipeline if pag else diffusers.StableDiffusionPipeline
        pipe = cls.from_pretrained(str(toy_model_dir()), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def with_call_defaults(kwargs: dict[str, Any], defaults: dict[str, Any], preset_chosen: bool) -> dict[str, Any]:
    """A preset's call kwargs merged with a model's own ``defaults``: a preset that was chosen (on the
    command line or at export) keeps its settings; otherwise the model's defaults win."""
    return {**defaults, **kwargs} if preset_chosen else {**kwargs, **defaults}


EMBEDDED_DEFAULT = EmbeddedModel(
    name="embedded:toy",
    backbone="sd15",
    description="the project's trained 16 px toy model (pladis/toy_model: shapes, colours, counts, relations; "
    "tools/toy/train.py)",
    # CFG hurts this small model (see the README's alignment table), so the default is no guidance.
    call_defaults={"num_inference_steps": 20, "height": 16, "width": 16, "guidance_scale": 1.0},
)
