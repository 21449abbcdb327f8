"""The DMD2 adapter: SDXL base + tianweiy's distilled UNet (``.bin``) or fused LoRA, LCM timesteps, CFG 0."""

from __future__ import annotations

import os
from typing import Any

from pladis_adapter_sdxl import load_pipeline as load_sdxl
from pladis_adapter_sdxl import tiny_pipeline as tiny_sdxl
from pladis_adapter_sdxl.family import distilled_adapter_spec
from pladis_registry import Preset, hookimpl
from pladis_registry.kit.distilled import DistilledModel

MODEL_ID = "tianweiy/DMD2"
BASE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

#: Files of the hub repo, per preset and kind (first kind = default). The ``.bin`` UNets are plain tensor
#: dicts, read with ``torch.load(weights_only=True)``; there is no 1-step LoRA.
FILES: dict[str, dict[str, str | None]] = {
    "1step": {"unet": "dmd2_sdxl_1step_unet_fp16.bin"},
    "4step": {"unet": "dmd2_sdxl_4step_unet_fp16.bin", "lora": "dmd2_sdxl_4step_lora_fp16.safetensors"},
}

PRESETS = {
    "1step": Preset("1step", "LCMScheduler", timesteps=(399,), guidance_scale=0.0,
                    description="LCM, timesteps [399], CFG 0 (1-step UNet)"),
    "4step": Preset("4step", "LCMScheduler", timesteps=(999, 749, 499, 249), guidance_scale=0.0,
                    description="LCM, timesteps [999, 749, 499, 249], CFG 0 (4-step UNet or LoRA)"),
}

DISTILLED = DistilledModel(
    name="dmd2", model_id=MODEL_ID, base_model=BASE_MODEL, presets=PRESETS, files=FILES, default_preset="4step",
)


def load_pipeline(model: str | os.PathLike[str] | None = None, *, steps: int | str | None = None,
                  kind: str | None = None, weights: str | os.PathLike[str] | None = None,
                  lora_scale: float = 1.0, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load DMD2: the SDXL base ``model`` plus the distilled weights for ``steps``, ready to sample.

    * ``model``: base pipeline, hub id or local folder (default ``stabilityai/stable-diffusion-xl-base-1.0``;
      ``"tianweiy/DMD2"`` also means the default base with that repo's weights).
    * ``steps``: 1 or 4 (or ``"4step"``); None: the preset of a known ``weights`` file name, else 4.
    * ``kind``: ``"unet"`` (full distilled UNet, the default) or ``"lora"`` (fused; 4 steps only).
    * ``weights``: a local file (``.bin`` read weights-only, or ``.safetensors``), a local folder with the
      repo's file names, or a hub repo (default ``tianweiy/DMD2``); ``lora_scale`` scales a fused LoRA.
    * ``variant``, ``torch_dtype``, ``pag`` and ``**kwargs`` go to the SDXL loader (``pag``: the PAG pipeline).

    The returned pipeline has ``LCMScheduler`` installed; call it with
    ``SPEC.preset(pipe._pladis_preset).call_kwargs()`` (explicit timesteps, CFG 0). ``ValueError`` names the
    valid values; a ``.bin`` holding anything but tensors is refused (``pickle.UnpicklingError``).
    """
    return DISTILLED.load(load_sdxl, model, steps=steps, kind=kind, weights=weights, lora_scale=lora_scale,
                          variant=variant, torch_dtype=torch_dtype, pag=pag, **kwargs)


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """The tiny random SDXL pipeline tagged as DMD2, with the 1-step preset's scheduler (LCM)."""
    return DISTILLED.tiny(tiny_sdxl, seed, sample_size=sample_size, pag=pag)


SPEC = distilled_adapter_spec(
    DISTILLED,
    description="DMD2 (Yin et al.): SDXL distilled by distribution matching to 1/4 steps, UNet or LoRA, no CFG",
    model_id_patterns=(r"(?<![a-z0-9])dmd[-_ ]?2(?![0-9])",),
    tiny=tiny_pipeline,
    load=load_pipeline,
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
