"""The FLUX.1 adapter: joint attention ([text | image] tokens) in double- and single-stream blocks."""

from __future__ import annotations

from typing import Any

from pladis_registry import AdapterSpec, Preset, hookimpl

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "black-forest-labs/FLUX.1-dev"
SCHNELL_MODEL = "black-forest-labs/FLUX.1-schnell"


def load_pipeline(model: str | None = None, *, variant: str | None = None, torch_dtype: Any = None,
                  img2img: bool = False, **kwargs: Any) -> Any:
    """Load a FLUX.1 pipeline (hub id or local folder; safetensors first) — the img2img one if ``img2img``."""
    import diffusers

    from pladis_registry.kit.loading import load_pretrained

    cls = diffusers.FluxImg2ImgPipeline if img2img else diffusers.FluxPipeline
    return load_pretrained(cls, model or DEFAULT_MODEL, variant=variant, torch_dtype=torch_dtype, **kwargs)


SPEC = AdapterSpec(
    name="flux",
    description="FLUX.1 dev / schnell (FluxTransformer2DModel: joint attention, [text | image] tokens)",
    pipeline_classes=(
        "FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline", "FluxControlNetPipeline",
        "FluxControlNetImg2ImgPipeline", "FluxControlPipeline",
    ),
    denoiser_classes=("FluxTransformer2DModel",),
    layer_groups={
        "double": r"^transformer_blocks\.\d+\.attn$",
        "single": r"^single_transformer_blocks\.\d+\.attn$",
    },
    block_index_pattern=r"transformer_blocks\.(\d+)\.attn$",
    presets={
        "dev": Preset("dev", None, num_inference_steps=28, guidance_scale=3.5,
                      description="FLUX.1-dev: FlowMatchEuler, 28 steps, guidance embedding 3.5 (no CFG pass)"),
        "schnell": Preset("schnell", None, num_inference_steps=4, guidance_scale=0.0,
                          call_overrides={"max_sequence_length": 256},
                          description="FLUX.1-schnell: FlowMatchEuler, 4 steps, guidance 0, 256 T5 tokens"),
    },
    default_preset="dev",
    model_id_patterns=(),
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        # the pipeline passes timestep / 1000 to the transformer; text first in every block
        "attention": {"kind": "joint", "token_order": "text_first", "text_length": "encoder_hidden_states",
                      "timestep_scale": 1000},
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
