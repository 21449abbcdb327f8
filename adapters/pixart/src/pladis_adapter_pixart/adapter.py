"""The PixArt-Sigma adapter: a DiT (PixArtTransformer2DModel) with T5 cross-attention in every block."""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
load_pipeline = pipeline_loader("PixArtSigmaPipeline", DEFAULT_MODEL, pag_pipeline="PixArtSigmaPAGPipeline")

SPEC = AdapterSpec(
    name="pixart",
    description="PixArt-Sigma (PixArtTransformer2DModel: a DiT with T5 cross-attention in each of its 28 blocks)",
    pipeline_classes=("PixArtSigmaPipeline", "PixArtSigmaPAGPipeline"),
    denoiser_classes=("PixArtTransformer2DModel",),
    block_index_pattern=r"^transformer_blocks\.(\d+)\.",  # layers=range(0, 14) or "0-13"
    attention_style="sd",
    presets={
        "default": Preset("default", "DPMSolverMultistepScheduler", num_inference_steps=20, guidance_scale=4.5,
                          description="DPM-Solver++, 20 steps, CFG 4.5 (the model card's setting)"),
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
