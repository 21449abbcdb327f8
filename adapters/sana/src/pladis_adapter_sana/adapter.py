"""The SANA adapter: linear-attention DiT whose cross-attention uses SanaAttnProcessor2_0 semantics."""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Efficient-Large-Model/Sana_1600M_1024px_diffusers"
load_pipeline = pipeline_loader("SanaPipeline", DEFAULT_MODEL, pag_pipeline="SanaPAGPipeline")


SPEC = AdapterSpec(
    name="sana",
    description="SANA (SanaTransformer2DModel: linear self-attention, masked Gemma text encoder)",
    pipeline_classes=("SanaPipeline", "SanaPAGPipeline", "SanaControlNetPipeline"),
    denoiser_classes=("SanaTransformer2DModel",),
    block_index_pattern=r"^transformer_blocks\.(\d+)\.",
    attention_style="sana",
    presets={
        "default": Preset("default", None, num_inference_steps=20, guidance_scale=4.5,
                          description="the pipeline's flow DPM-Solver, 20 steps, CFG 4.5"),
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
