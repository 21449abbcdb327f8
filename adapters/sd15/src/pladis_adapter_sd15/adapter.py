"""The SD1.5 adapter: Stable Diffusion 1.x/2.x UNet pipelines (CLIP text encoder, no added embeddings)."""

from __future__ import annotations

from pladis_registry import UNET_LAYER_GROUPS, AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
load_pipeline = pipeline_loader("StableDiffusionPipeline", DEFAULT_MODEL, pag_pipeline="StableDiffusionPAGPipeline",
                                safety_checker=None, requires_safety_checker=False)


SPEC = AdapterSpec(
    name="sd15",
    description="Stable Diffusion 1.x/2.x (UNet2DConditionModel, CLIP text encoder)",
    pipeline_classes=(
        "StableDiffusionPipeline",
        "StableDiffusionImg2ImgPipeline",
        "StableDiffusionInpaintPipeline",
        "StableDiffusionPAGPipeline",
        "StableDiffusionControlNetPipeline",
    ),
    denoiser_classes=("UNet2DConditionModel",),
    denoiser_config={"addition_embed_type": None},
    layer_groups=UNET_LAYER_GROUPS,
    attention_style="sd",
    presets={
        "default": Preset("default", "DDIMScheduler", num_inference_steps=50, guidance_scale=7.5,
                          description="DDIM, 50 steps, CFG 7.5"),
        "fast": Preset("fast", "DPMSolverMultistepScheduler", num_inference_steps=20, guidance_scale=7.5,
                       description="DPM-Solver++, 20 steps, CFG 7.5"),
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
