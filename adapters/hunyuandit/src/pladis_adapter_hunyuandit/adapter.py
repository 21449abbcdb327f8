"""The HunyuanDiT adapter: text cross-attention of ``HunyuanDiT2DModel`` (``blocks.N.attn2``, legacy
``Attention`` + ``HunyuanAttnProcessor2_0``) as data on the SDPA interception of :mod:`pladis.intercept`
(kind "cross"): diffusers' processor applies its q/k norms and the image-query RoPE, PLADIS only the weights.
"""

from __future__ import annotations

from pladis_registry import AdapterSpec, Preset, hookimpl
from pladis_registry.kit.pipelines import pipeline_loader

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers"

load_pipeline = pipeline_loader("HunyuanDiTPipeline", DEFAULT_MODEL, pag_pipeline="HunyuanDiTPAGPipeline")

SPEC = AdapterSpec(
    name="hunyuandit",
    description="HunyuanDiT (HunyuanDiT2DModel: attn2 with HunyuanAttnProcessor2_0; BERT + mT5 text)",
    pipeline_classes=("HunyuanDiTPipeline", "HunyuanDiTPAGPipeline", "HunyuanDiTControlNetPipeline"),
    denoiser_classes=("HunyuanDiT2DModel",),
    layer_groups={"cross": r"^blocks\.\d+\.attn2$"},
    block_index_pattern=r"^blocks\.(\d+)\.",
    presets={
        "default": Preset("default", None, num_inference_steps=50, guidance_scale=5.0, height=1024, width=1024,
                          description="the pipeline's DDPM scheduler, 50 steps, CFG 5.0, 1024x1024"),
    },
    default_preset="default",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={"default_model": DEFAULT_MODEL, "attention": {"kind": "cross"}},
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
