"""The Qwen-Image adapter: joint attention ([text | image] tokens, padded text mask) in every block."""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Qwen/Qwen-Image"


load_pipeline = pipeline_loader("QwenImagePipeline", DEFAULT_MODEL)


SPEC = AdapterSpec(
    name="qwen-image",
    description="Qwen-Image (QwenImageTransformer2DModel: joint attention, [text | image] tokens, text mask)",
    pipeline_classes=("QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"),
    denoiser_classes=("QwenImageTransformer2DModel",),
    layer_groups={"joint": r"^transformer_blocks\.\d+\.attn$"},
    block_index_pattern=r"^transformer_blocks\.(\d+)\.attn$",
    presets={
        "default": Preset("default", None, num_inference_steps=50, guidance_scale=None,
                          call_overrides={"true_cfg_scale": 4.0, "negative_prompt": " "},
                          description="Qwen-Image: FlowMatchEuler, 50 steps, true CFG 4.0 (negative prompt ' ')"),
    },
    default_preset="default",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        # the pipeline passes timestep / 1000; the processor joins the text mask to an all-ones image mask
        "attention": {"kind": "joint", "token_order": "text_first", "text_length": "encoder_hidden_states",
                      "timestep_scale": 1000},
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
