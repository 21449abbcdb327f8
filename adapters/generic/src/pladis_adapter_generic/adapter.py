"""The generic fallback: any diffusers denoiser that has cross-attention modules.

Used when no specific adapter matches. Layer groups are the denoiser's top-level children
(e.g. ``down_blocks``, ``mid_block``, ``transformer_blocks``); the processor reads the attention
semantics off each module; the pipeline keeps its own scheduler and call defaults.
"""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl

SPEC = AdapterSpec(
    name="generic",
    description="Fallback for any diffusers denoiser with cross-attention modules",
    block_index_pattern=r"^\w+\.(\d+)\.",
    attention_style="auto",
    presets={"default": Preset("default", None, description="the pipeline's own scheduler and defaults",
                               guidance_scale=None)},
    default_preset="default",
    priority=-100,
    generic=True,
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
