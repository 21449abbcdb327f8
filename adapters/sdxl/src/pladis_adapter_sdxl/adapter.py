"""The SDXL adapter: Stable Diffusion XL base (two CLIP text encoders, added time ids)."""

from __future__ import annotations

from pladis_registry import UNET_LAYER_GROUPS, AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

#: Pipeline classes of the SDXL architecture, shared with the guidance-distilled SDXL adapters.
SDXL_PIPELINES = (
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
    "StableDiffusionXLPAGPipeline",
    "StableDiffusionXLControlNetPipeline",
)
SDXL_DENOISER_CONFIG = {"addition_embed_type": "text_time"}
load_pipeline = pipeline_loader("StableDiffusionXLPipeline", DEFAULT_MODEL, pag_pipeline="StableDiffusionXLPAGPipeline")


SPEC = AdapterSpec(
    name="sdxl",
    description="Stable Diffusion XL base (UNet with text_time embeddings, two CLIP text encoders)",
    pipeline_classes=SDXL_PIPELINES,
    denoiser_classes=("UNet2DConditionModel",),
    denoiser_config=SDXL_DENOISER_CONFIG,
    layer_groups=UNET_LAYER_GROUPS,
    attention_style="sd",
    presets={
        "default": Preset("default", "EulerDiscreteScheduler", num_inference_steps=25, guidance_scale=5.0,
                          description="Euler, 25 steps, CFG 5.0 (the paper's SDXL setting)"),
    },
    default_preset="default",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={"default_model": DEFAULT_MODEL},
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
