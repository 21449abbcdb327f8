"""The SDXL-Turbo adapter: the full distilled model, Euler Ancestral "trailing", 1-4 steps at 512², CFG 0."""

from __future__ import annotations

import os
from typing import Any

from pladis_adapter_sdxl import load_pipeline as load_sdxl
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl
from pladis_adapter_sdxl.family import distilled_adapter_spec
from pladis_registry import Preset, hookimpl
from pladis_registry.kit.distilled import DistilledModel

MODEL_ID = "stabilityai/sdxl-turbo"

#: SDXL-Turbo ships as a full pipeline: every preset uses the model itself (kind "full", no extra file).
FILES: dict[str, dict[str, str | None]] = {"1step": {"full": None}, "4step": {"full": None}}


def _euler_ancestral(steps: int) -> Preset:
    return Preset(f"{steps}step", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"},
                  num_inference_steps=steps, guidance_scale=0.0, height=512, width=512,
                  description=f"Euler Ancestral, trailing, {steps} step{'s' if steps > 1 else ''}, CFG 0, 512x512")


PRESETS = {"1step": _euler_ancestral(1), "4step": _euler_ancestral(4)}

DISTILLED = DistilledModel(
    name="sdxl-turbo", model_id=MODEL_ID, base_model=MODEL_ID, presets=PRESETS, files=FILES,
    default_preset="1step",
)


def load_pipeline(model: str | os.PathLike[str] | None = None, *, steps: int | str | None = None,
                  kind: str | None = None, weights: str | os.PathLike[str] | None = None,
                  lora_scale: float = 1.0, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load SDXL-Turbo (hub id or local folder, default ``stabilityai/sdxl-turbo``), ready to sample.

    * ``steps``: 1 (default) or 4 (or ``"4step"``); 2-3 steps work too with the 4-step preset's scheduler.
    * ``kind``: only ``"full"`` (the model is distilled as a whole); ``weights`` must stay None and
      ``lora_scale`` 1.0 (kept for the signature shared with the other distilled-SDXL adapters).
    * ``variant`` (e.g. ``"fp16"``), ``torch_dtype``, ``pag`` and ``**kwargs`` go to the SDXL loader.

    The returned pipeline has Euler Ancestral "trailing" installed; call it with
    ``SPEC.preset(pipe._pladis_preset).call_kwargs()`` (CFG 0, 512x512). ``ValueError`` names the valid values.
    """
    return DISTILLED.load(load_sdxl, model, steps=steps, kind=kind, weights=weights, lora_scale=lora_scale,
                          variant=variant, torch_dtype=torch_dtype, pag=pag, **kwargs)


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """The tiny random SDXL pipeline tagged as SDXL-Turbo, with the 1-step preset's scheduler."""
    return DISTILLED.tiny(tiny_sdxl, seed, sample_size=sample_size, pag=pag)


SPEC = distilled_adapter_spec(
    DISTILLED,
    description="SDXL-Turbo (Stability AI): SDXL distilled by adversarial diffusion distillation, 1-4 steps, no CFG",
    model_id_patterns=(r"sdxl[-_ ]?turbo",),
    tiny=tiny_pipeline,
    load=load_pipeline,
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
