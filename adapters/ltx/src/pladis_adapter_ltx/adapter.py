"""The LTX-Video adapter: text cross-attention of ``LTXVideoTransformer3DModel``
(``transformer_blocks.N.attn2``) as data on the SDPA interception of :mod:`pladis.intercept` (kind "cross")."""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Lightricks/LTX-Video"

load_pipeline = pipeline_loader("LTXPipeline", DEFAULT_MODEL)

SPEC = AdapterSpec(
    name="ltx",
    description="LTX-Video (LTXVideoTransformer3DModel: text cross-attention attn2, masked T5 text)",
    pipeline_classes=("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline"),
    denoiser_classes=("LTXVideoTransformer3DModel",),
    layer_groups={"cross": r"^transformer_blocks\.\d+\.attn2$"},
    block_index_pattern=r"^transformer_blocks\.(\d+)\.",
    presets={
        # the example of diffusers' LTXPipeline (its call defaults: CFG 3.0, 50 steps)
        "default": Preset("default", None, num_inference_steps=50, guidance_scale=3.0, height=480, width=704,
                          call_overrides={"num_frames": 161},
                          description="the pipeline's flow-matching Euler, 50 steps, CFG 3.0, 161 x 480x704"),
    },
    default_preset="default",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        "attention": {"kind": "cross", "text_length": "encoder_hidden_states"},
        "video": True,
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
