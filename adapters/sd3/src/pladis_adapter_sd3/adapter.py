"""The SD3 / SD3.5 adapter: joint attention ([image | text] tokens) in every MMDiT block's ``attn``."""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "stabilityai/stable-diffusion-3.5-medium"


load_pipeline = pipeline_loader("StableDiffusion3Pipeline", DEFAULT_MODEL,
                                pag_pipeline="StableDiffusion3PAGPipeline")


SPEC = AdapterSpec(
    name="sd3",
    description="Stable Diffusion 3 / 3.5 (SD3Transformer2DModel: joint attention, [image | text] tokens)",
    pipeline_classes=(
        "StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline",
        "StableDiffusion3PAGPipeline", "StableDiffusion3PAGImg2ImgPipeline", "StableDiffusion3ControlNetPipeline",
    ),
    denoiser_classes=("SD3Transformer2DModel",),
    # only ``attn`` is joint; SD3.5's ``attn2`` attends over image tokens alone (self-attention)
    layer_groups={"joint": r"^transformer_blocks\.\d+\.attn$"},
    block_index_pattern=r"^transformer_blocks\.(\d+)\.attn$",
    presets={
        "large": Preset("large", None, num_inference_steps=28, guidance_scale=3.5,
                        description="SD3.5 Large: FlowMatchEuler, 28 steps, CFG 3.5"),
        "medium": Preset("medium", None, num_inference_steps=40, guidance_scale=4.5,
                         description="SD3.5 Medium: FlowMatchEuler, 40 steps, CFG 4.5"),
        "turbo": Preset("turbo", None, num_inference_steps=4, guidance_scale=0.0,
                        description="SD3.5 Large Turbo: FlowMatchEuler, 4 steps, no CFG"),
    },
    default_preset="medium",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        # the pipeline passes the scheduler's timestep (0..1000); image tokens first
        "attention": {"kind": "joint", "token_order": "image_first", "text_length": "encoder_hidden_states"},
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
