"""What every guidance-distilled SDXL adapter shares with SDXL: classes, layer groups, tiny call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pladis_registry import UNET_LAYER_GROUPS, AdapterSpec
from pladis_registry.kit.distilled import DistilledModel

from .adapter import SDXL_DENOISER_CONFIG, SDXL_PIPELINES
from .tiny import FAST_CALL_KWARGS

#: A cheap call of the tiny pipeline on top of a preset's call kwargs (the preset sets steps and CFG).
TINY_CALL_KWARGS: dict[str, Any] = {k: v for k, v in FAST_CALL_KWARGS.items() if k != "num_inference_steps"}


def distilled_adapter_spec(
    distilled: DistilledModel,
    *,
    description: str,
    model_id_patterns: tuple[str, ...],
    tiny: Callable[..., Any],
    load: Callable[..., Any],
) -> AdapterSpec:
    """The AdapterSpec of a guidance-distilled SDXL backbone: SDXL's architecture, its own presets and
    weights, matched by model id (the pipelines and UNet are SDXL's)."""
    return AdapterSpec(
        name=distilled.name,
        description=description,
        pipeline_classes=SDXL_PIPELINES,
        denoiser_classes=("UNet2DConditionModel",),
        denoiser_config=SDXL_DENOISER_CONFIG,
        model_id_patterns=model_id_patterns,
        layer_groups=UNET_LAYER_GROUPS,
        attention_style="sd",
        presets=distilled.presets,
        default_preset=distilled.default_preset,
        priority=10,
        tiny=tiny,
        tiny_call_kwargs=TINY_CALL_KWARGS,
        load=load,
        extra=distilled.extra(),
    )
