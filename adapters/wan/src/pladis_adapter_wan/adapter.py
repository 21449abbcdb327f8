"""The Wan adapter: text cross-attention of ``WanTransformer3DModel`` (``blocks.N.attn2``) as data on the
SDPA interception of :mod:`pladis.intercept` (kind "cross").

``attn2`` of an image-to-video checkpoint runs two SDPA calls — the CLIP image tokens (257 keys), then
the text (512 keys); ``call="text"`` gives PLADIS only the call whose keys are as many as the text tokens
the denoiser was called with (``encoder_hidden_states``), so the image branch stays dense.
"""

from __future__ import annotations

from typing import Any

from pladis_registry import AdapterSpec, Preset, hookimpl

from .tiny import FAST_CALL_KWARGS, tiny_pipeline

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
#: UniPC on flow sigmas, as the Wan-AI Diffusers repos ship it; flow shift 3.0 for 480p, 5.0 for 720p.
_UNIPC = "UniPCMultistepScheduler"


def load_pipeline(model: str | None = None, *, variant: str | None = None, torch_dtype: Any = None,
                  pag: bool = False, **kwargs: Any) -> Any:
    """Load a Wan pipeline (``WanPipeline`` or ``WanImageToVideoPipeline``, as its model_index.json says;
    hub id or local folder; safetensors first), its VAE in float32 as the model cards advise."""
    import diffusers
    import torch

    from pladis_registry.kit.loading import load_pretrained

    if pag:
        raise ValueError("pag=True: diffusers has no PAG pipeline for Wan")
    model = model or DEFAULT_MODEL
    if "vae" not in kwargs and torch_dtype not in (None, torch.float32):
        kwargs["vae"] = load_pretrained(diffusers.AutoencoderKLWan, model, subfolder="vae", torch_dtype=torch.float32)
    return load_pretrained(diffusers.DiffusionPipeline, model, variant=variant, torch_dtype=torch_dtype, **kwargs)


def _preset(name: str, shift: float, height: int, width: int, steps: int, cfg: float, description: str,
            **call: Any) -> Preset:
    return Preset(name, _UNIPC, scheduler_config={"flow_shift": shift}, num_inference_steps=steps,
                  guidance_scale=cfg, height=height, width=width, call_overrides={"num_frames": 81, **call},
                  description=description)


SPEC = AdapterSpec(
    name="wan",
    description="Wan 2.1 / 2.2 text- and image-to-video (WanTransformer3DModel; text part of attn2 only)",
    pipeline_classes=("WanPipeline", "WanImageToVideoPipeline", "WanVideoToVideoPipeline"),
    denoiser_classes=("WanTransformer3DModel",),
    layer_groups={"cross": r"^blocks\.\d+\.attn2$"},
    block_index_pattern=r"^blocks\.(\d+)\.",
    presets={
        "480p": _preset("480p", 3.0, 480, 832, 50, 5.0, "UniPC, flow shift 3.0, 50 steps, CFG 5.0, 81 x 480x832"),
        "720p": _preset("720p", 5.0, 720, 1280, 50, 5.0, "UniPC, flow shift 5.0, 50 steps, CFG 5.0, 81 x 720x1280"),
        "a14b": Preset("a14b", None, num_inference_steps=40, guidance_scale=4.0, height=720, width=1280,
                       call_overrides={"num_frames": 81, "guidance_scale_2": 3.0},
                       description="Wan 2.2 A14B (transformer + transformer_2): its own scheduler, 40 steps, "
                                   "CFG 4.0 / 3.0, 81 x 720x1280"),
    },
    default_preset="480p",
    priority=10,
    tiny=tiny_pipeline,
    tiny_call_kwargs=FAST_CALL_KWARGS,
    load=load_pipeline,
    extra={
        "default_model": DEFAULT_MODEL,
        "attention": {"kind": "cross", "call": "text", "text_length": "encoder_hidden_states"},
        "video": True,
    },
)


@hookimpl
def pladis_register_adapters(register):
    register(SPEC)
