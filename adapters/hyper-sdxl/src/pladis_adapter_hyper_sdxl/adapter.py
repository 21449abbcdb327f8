"""The Hyper-SDXL adapter: SDXL base + ByteDance's Hyper-SD 1-step UNet, N-step LoRAs or unified TCD LoRA, CFG 0."""

from __future__ import annotations

import os
from typing import Any

from pladis_adapter_sdxl import load_pipeline as load_sdxl
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl
from pladis_adapter_sdxl.family import distilled_adapter_spec
from pladis_registry import Preset, hookimpl
from pladis_registry.kit.distilled import DistilledModel

MODEL_ID = "ByteDance/Hyper-SD"
BASE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

#: Files of the hub repo, per preset and kind (first kind = default). ``unified`` is the 1-step LoRA that
#: TCD samples at any step count.
FILES: dict[str, dict[str, str | None]] = {
    "1step": {"unet": "Hyper-SDXL-1step-Unet.safetensors"},
    "2step": {"lora": "Hyper-SDXL-2steps-lora.safetensors"},
    "4step": {"lora": "Hyper-SDXL-4steps-lora.safetensors"},
    "8step": {"lora": "Hyper-SDXL-8steps-lora.safetensors"},
    "unified": {"lora": "Hyper-SDXL-1step-lora.safetensors"},
}


def _ddim(steps: int) -> Preset:
    # clip_sample=False is SDXL's own DDIM setting (DDIM's default True would clip the latents' x0 to ±1)
    return Preset(f"{steps}step", "DDIMScheduler", {"timestep_spacing": "trailing", "clip_sample": False},
                  num_inference_steps=steps, guidance_scale=0.0,
                  description=f"DDIM, trailing, {steps} steps, CFG 0 ({steps}-step LoRA, fused)")


PRESETS = {
    "1step": Preset("1step", "LCMScheduler", timesteps=(800,), guidance_scale=0.0,
                    description="LCM, timesteps [800], CFG 0 (1-step UNet)"),
    "2step": _ddim(2),
    "4step": _ddim(4),
    "8step": _ddim(8),
    "unified": Preset("unified", "TCDScheduler", num_inference_steps=1, guidance_scale=0.0,
                      call_overrides={"eta": 1.0},
                      description="TCD, eta 1.0, 1 step (any of 1-8 via num_inference_steps), CFG 0 "
                                  "(unified 1-step LoRA, fused)"),
}

DISTILLED = DistilledModel(
    name="hyper-sdxl", model_id=MODEL_ID, base_model=BASE_MODEL, presets=PRESETS, files=FILES,
    default_preset="4step",
)


def load_pipeline(model: str | os.PathLike[str] | None = None, *, steps: int | str | None = None,
                  kind: str | None = None, weights: str | os.PathLike[str] | None = None,
                  lora_scale: float = 1.0, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load Hyper-SDXL: the SDXL base ``model`` plus the Hyper-SD weights for ``steps``, ready to sample.

    * ``model``: base pipeline, hub id or local folder (default ``stabilityai/stable-diffusion-xl-base-1.0``;
      ``"ByteDance/Hyper-SD"`` also means the default base with that repo's weights).
    * ``steps``: 1 (UNet, LCM), 2, 4, 8 (LoRA, DDIM) or ``"unified"`` (1-step LoRA, TCD); None: the preset
      of a known ``weights`` file name, else 4.
    * ``kind``: the only kind each preset has (``"unet"`` for 1 step, ``"lora"`` otherwise); may be omitted.
    * ``weights``: a local file, a local folder with the repo's file names, or a hub repo (default
      ``ByteDance/Hyper-SD``); ``lora_scale`` scales a fused LoRA.
    * ``variant``, ``torch_dtype``, ``pag`` and ``**kwargs`` go to the SDXL loader (``pag``: the PAG pipeline).

    The returned pipeline has the preset's scheduler installed; call it with
    ``SPEC.preset(pipe._pladis_preset).call_kwargs()`` (CFG 0; ``eta=1.0`` for TCD). ``ValueError`` names
    the valid values.
    """
    return DISTILLED.load(load_sdxl, model, steps=steps, kind=kind, weights=weights, lora_scale=lora_scale,
                          variant=variant, torch_dtype=torch_dtype, pag=pag, **kwargs)


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """The tiny random SDXL pipeline tagged as Hyper-SDXL, with the 1-step preset's scheduler (LCM)."""
    return DISTILLED.tiny(tiny_sdxl, seed, sample_size=sample_size, pag=pag)


SPEC = distilled_adapter_spec(
    DISTILLED,
    description="Hyper-SDXL (ByteDance): SDXL distilled to 1-8 steps, 1-step UNet, N-step and unified LoRAs, no CFG",
    model_id_patterns=(r"hyper[-_ ]?sd",),
    tiny=tiny_pipeline,
    load=load_pipeline,
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
