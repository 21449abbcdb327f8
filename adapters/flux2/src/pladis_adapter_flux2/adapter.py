"""The FLUX.2 adapter: joint attention ([text | image] tokens) in double- and parallel single-stream blocks."""

from __future__ import annotations

from typing import Any

from pladis_registry import AdapterSpec, Preset, hookimpl

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "black-forest-labs/FLUX.2-dev"
KLEIN_MODEL = "black-forest-labs/FLUX.2-klein-4B"


def load_pipeline(model: str | None = None, *, variant: str | None = None, torch_dtype: Any = None,
                  klein: bool | None = None, **kwargs: Any) -> Any:
    """Load a FLUX.2 pipeline (hub id or local folder; safetensors first): ``Flux2KleinPipeline`` when
    ``klein`` (default: when a local folder's ``model_index.json`` or the model id names Klein), else
    ``Flux2Pipeline``."""
    import json
    from pathlib import Path

    import diffusers

    from pladis_registry.kit.loading import load_pretrained

    model = model or DEFAULT_MODEL
    if klein is None:
        index = Path(model).expanduser() / "model_index.json"
        named = json.loads(index.read_text()).get("_class_name", "") if index.is_file() else str(model)
        klein = "klein" in named.lower()
    cls = diffusers.Flux2KleinPipeline if klein else diffusers.Flux2Pipeline
    return load_pretrained(cls, model, variant=variant, torch_dtype=torch_dtype, **kwargs)


SPEC = AdapterSpec(
    name="flux2",
    description="FLUX.2 / FLUX.2 Klein (Flux2Transformer2DModel: joint attention, [text | image] tokens)",
    pipeline_classes=("Flux2Pipeline", "Flux2KleinPipeline", "Flux2KleinInpaintPipeline"),
    denoiser_classes=("Flux2Transformer2DModel",),
    layer_groups={
        "double": r"^transformer_blocks\.\d+\.attn$",
        "single": r"^single_transformer_blocks\.\d+\.attn$",
    },
    block_index_pattern=r"transformer_blocks\.(\d+)\.attn$",
    presets={
        "dev": Preset("dev", None, num_inference_steps=50, guidance_scale=4.0,
                      description="FLUX.2-dev: FlowMatchEuler, 50 steps, guidance embedding 4.0"),
        "klein": Preset("klein", None, num_inference_steps=4, guidance_scale=1.0,
                        description="FLUX.2 Klein (distilled): FlowMatchEuler, 4 steps, guidance 1.0"),
    },
    default_preset="dev",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        # the pipelines pass timestep / 1000; text first (the KV-cache variant's reference tokens count as image)
        "attention": {"kind": "joint", "token_order": "text_first", "text_length": "encoder_hidden_states",
                      "timestep_scale": 1000},
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
