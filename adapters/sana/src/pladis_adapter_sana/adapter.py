"""The SANA adapter: linear-attention DiT whose cross-attention uses SanaAttnProcessor2_0 semantics."""

from __future__ import annotations

from typing import Any

from pladis_registry import AdapterSpec, Preset, hookimpl

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Efficient-Large-Model/Sana_1600M_1024px_diffusers"


def load_pipeline(model: str | None = None, *, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load a SANA pipeline (hub id or local folder; safetensors first) — the PAG one if ``pag``."""
    import diffusers

    from pladis_registry.kit.loading import load_pretrained

    cls = diffusers.SanaPAGPipeline if pag else diffusers.SanaPipeline
    return load_pretrained(cls, model or DEFAULT_MODEL, variant=variant, torch_dtype=torch_dtype, **kwargs)


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
