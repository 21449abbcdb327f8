"""A third-party adapter: a custom pipeline class with its own layer-group names.

It is what a plugin author writes (see ``pladis_registry.hookspecs``): an ``AdapterSpec`` and a
``pladis_register_adapters`` hook, declared in the ``pladis.adapters`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from pladis_registry import AdapterSpec, Preset, hookimpl


def tiny_pipeline(seed: int = 0) -> Any:
    """A tiny ``SampleTextToImagePipeline`` (diffusers is imported only here, not at discovery)."""
    from .pipeline import tiny_pipeline as build

    return build(seed)


SPEC = AdapterSpec(
    name="sample",
    description="Sample third-party adapter (SampleTextToImagePipeline)",
    pipeline_classes=("SampleTextToImagePipeline",),
    denoiser_classes=(),
    layer_groups={"encoder": r"^down_blocks\.", "bottleneck": r"^mid_block\.", "decoder": r"^up_blocks\."},
    attention_style="sd",
    presets={"quick": Preset("quick", "EulerDiscreteScheduler", num_inference_steps=3, guidance_scale=4.0)},
    default_preset="quick",
    priority=50,
    tiny=tiny_pipeline,
    tiny_call_kwargs={"height": 32, "width": 32, "output_type": "np"},
)


@hookimpl
def pladis_register_adapters(register: Any) -> None:
    register(SPEC)
