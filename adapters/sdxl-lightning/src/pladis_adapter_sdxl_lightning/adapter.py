"""The SDXL-Lightning adapter: SDXL base + ByteDance's distilled UNet or fused LoRA, Euler "trailing", CFG 0."""

from __future__ import annotations

import os
from typing import Any

from pladis_adapter_sdxl import load_pipeline as load_sdxl
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl
from pladis_adapter_sdxl.family import distilled_adapter_spec
from pladis_registry import Preset, hookimpl
from pladis_registry.kit.distilled import DistilledModel

MODEL_ID = "ByteDance/SDXL-Lightning"
BASE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

#: Files of the hub repo, per preset and kind (first kind = default). There is no 1-step LoRA.
FILES: dict[str, dict[str, str | None]] = {
    "1step": {"unet": "sdxl_lightning_1step_unet_x0.safetensors"},
    "2step": {"unet": "sdxl_lightning_2step_unet.safetensors", "lora": "sdxl_lightning_2step_lora.safetensors"},
    "4step": {"unet": "sdxl_lightning_4step_unet.safetensors", "lora": "sdxl_lightning_4step_lora.safetensors"},
    "8step": {"unet": "sdxl_lightning_8step_unet.safetensors", "lora": "sdxl_lightning_8step_lora.safetensors"},
}


def _euler(steps: int, prediction_type: str = "epsilon") -> Preset:
    return Preset(
        f"{steps}step",
        "EulerDiscreteScheduler",
        {"timestep_spacing": "trailing", "prediction_type": prediction_type},
        num_inference_steps=steps,
        guidance_scale=0.0,
        description=f"Euler, trailing, {steps} step{'s' if steps > 1 else ''}, CFG 0"
        + (" (x0 UNet: prediction_type='sample')" if prediction_type == "sample" else ""),
    )


PRESETS = {"1step": _euler(1, "sample"), "2step": _euler(2), "4step": _euler(4), "8step": _euler(8)}

DISTILLED = DistilledModel(
    name="sdxl-lightning", model_id=MODEL_ID, base_model=BASE_MODEL, presets=PRESETS, files=FILES,
    default_preset="4step",
)


def load_pipeline(model: str | os.PathLike[str] | None = None, *, steps: int | str | None = None,
                  kind: str | None = None, weights: str | os.PathLike[str] | None = None,
                  lora_scale: float = 1.0, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load SDXL-Lightning: the SDXL base ``model`` plus the distilled weights for ``steps``, ready to sample.

    * ``model``: base pipeline, hub id or local folder (default ``stabilityai/stable-diffusion-xl-base-1.0``;
      ``"ByteDance/SDXL-Lightning"`` also means the default base with that repo's weights).
    * ``steps``: 1, 2, 4 or 8 (or ``"4step"``...); None: the preset of a known ``weights`` file name, else 4.
    * ``kind``: ``"unet"`` (full distilled UNet, the default) or ``"lora"`` (fused; not for 1 step).
    * ``weights``: a local file, a local folder with the repo's file names, or a hub repo (default
      ``ByteDance/SDXL-Lightning``); ``lora_scale`` scales a fused LoRA.
    * ``variant``, ``torch_dtype``, ``pag`` and ``**kwargs`` go to the SDXL loader (``pag``: the PAG pipeline).

    The returned pipeline has the preset's Euler "trailing" scheduler installed; call it with
    ``SPEC.preset(pipe._pladis_preset).call_kwargs()`` (CFG 0, N steps). ``ValueError`` names the valid values.
    """
    return DISTILLED.load(load_sdxl, model, steps=steps, kind=kind, weights=weights, lora_scale=lora_scale,
                          variant=variant, torch_dtype=torch_dtype, pag=pag, **kwargs)


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """The tiny random SDXL pipeline tagged as SDXL-Lightning, with the 1-step preset's scheduler."""
    return DISTILLED.tiny(tiny_sdxl, seed, sample_size=sample_size, pag=pag)


SPEC = distilled_adapter_spec(
    DISTILLED,
    description="SDXL-Lightning (ByteDance): SDXL distilled to 1/2/4/8 steps, UNet or LoRA, no CFG",
    model_id_patterns=(r"sdxl[-_ ]?lightning",),
    tiny=tiny_pipeline,
    load=load_pipeline,
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
