"""The AnimateDiff adapter: an SD1.5 UNet turned into a ``UNetMotionModel`` by a motion adapter.

Every frame is a batch element of the spatial layers, so the SD1.5 cross-attention (``attn2`` of the
spatial transformers) sees each frame's queries against the prompt; the motion modules' attention is
temporal self-attention (``is_cross_attention`` False) and is never selected.
"""

from __future__ import annotations

from typing import Any

from pladis_registry import UNET_LAYER_GROUPS, AdapterSpec, Preset, hookimpl

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

#: The base model and motion adapter of diffusers' AnimateDiff example (its documentation page).
DEFAULT_MODEL = "SG161222/Realistic_Vision_V5.1_noVAE"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
#: The scheduler of that example: DDIM with linear betas, linspace spacing, no sample clipping.
_DDIM = {"clip_sample": False, "timestep_spacing": "linspace", "beta_schedule": "linear", "steps_offset": 1}


def load_pipeline(model: str | None = None, *, motion_adapter: str | None = None, variant: str | None = None,
                  torch_dtype: Any = None, pag: bool = False, **kwargs: Any) -> Any:
    """Load an SD1.5 base (hub id or folder; safetensors first) with a motion adapter — an
    ``AnimateDiffPipeline`` folder needs none — as ``AnimateDiffPipeline`` (the PAG one if ``pag``)."""
    import diffusers

    from pladis_registry.kit.loading import load_pretrained

    cls = diffusers.AnimateDiffPAGPipeline if pag else diffusers.AnimateDiffPipeline
    if "motion_adapter" not in kwargs and not _has_motion_unet(model):
        kwargs["motion_adapter"] = load_pretrained(diffusers.MotionAdapter, motion_adapter or DEFAULT_MOTION_ADAPTER,
                                                   variant=variant, torch_dtype=torch_dtype)
    return load_pretrained(cls, model or DEFAULT_MODEL, variant=variant, torch_dtype=torch_dtype, **kwargs)


def _has_motion_unet(model: str | None) -> bool:
    """Whether ``model`` is a local folder saved from an AnimateDiff pipeline (its UNet is a motion UNet)."""
    import json
    from pathlib import Path

    if model is None or not (Path(model) / "unet" / "config.json").is_file():
        return False
    config = json.loads((Path(model) / "unet" / "config.json").read_text(encoding="utf-8"))
    return config.get("_class_name") == "UNetMotionModel"


SPEC = AdapterSpec(
    name="animatediff",
    description="AnimateDiff (UNetMotionModel: SD1.5 cross-attention per frame; motion modules untouched)",
    pipeline_classes=("AnimateDiffPipeline", "AnimateDiffPAGPipeline", "AnimateDiffVideoToVideoPipeline"),
    denoiser_classes=("UNetMotionModel",),
    layer_groups=UNET_LAYER_GROUPS,
    attention_style="sd",
    presets={
        "default": Preset("default", "DDIMScheduler", scheduler_config=_DDIM, num_inference_steps=25,
                          guidance_scale=7.5, call_overrides={"num_frames": 16},
                          description="DDIM (linear betas, linspace), 25 steps, CFG 7.5, 16 frames"),
        "quality": Preset("quality", "DDIMScheduler", scheduler_config=_DDIM, num_inference_steps=50,
                          guidance_scale=7.5, call_overrides={"num_frames": 16},
                          description="DDIM (linear betas, linspace), 50 steps, CFG 7.5, 16 frames"),
    },
    default_preset="default",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={"default_model": DEFAULT_MODEL, "motion_adapter": DEFAULT_MOTION_ADAPTER, "video": True},
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
