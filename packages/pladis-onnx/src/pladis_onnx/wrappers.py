"""Traceable wrappers: the export processor (Eq. 15 with λ from a graph input) and per-component modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from pladis import PLADISAttnProcessor

from .export_attention import pladis_attention_export

__all__ = [
    "DenoiserWrapper",
    "ExportPLADISProcessor",
    "TextEncoderWrapper",
    "VaeDecoderWrapper",
    "denoiser_kind",
    "export_processors",
]


class ExportPLADISProcessor(PLADISAttnProcessor):
    """A :class:`pladis.PLADISAttnProcessor` whose attention is the sort-free, fixed-iteration Eq. 15.

    λ is read from ``state["scale"]`` at call time: the :class:`DenoiserWrapper` stores its
    ``pladis_scale`` input tensor there before calling the denoiser, so tracing records λ as a graph
    input (or a float constant with ``--static-scale``). α and the temperature are fixed at export.
    """

    def __init__(self, state: dict[str, Any], alpha: float, temperature: float, style: str | None) -> None:
        super().__init__(2.0, alpha, temperature, style=style)  # scale ≠ 0 keeps the processor "active"
        self.state = state

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        active: bool,
    ) -> torch.Tensor:
        return pladis_attention_export(
            query,
            key,
            value,
            self.state["scale"],
            alpha=self.alpha,
            temperature=self.temperature,
            attn_mask=attention_mask,
        )


@contextlib.contextmanager
def export_processors(
    denoiser: Any, state: dict[str, Any], alpha: float, temperature: float, style: str | None
) -> Iterator[int]:
    """Install :class:`ExportPLADISProcessor` on every cross-attention; restore the originals on exit."""
    from pladis.apply import cross_attention_modules

    modules = cross_attention_modules(denoiser)
    if not modules:
        raise ValueError(
            f"{type(denoiser).__name__} has no cross-attention modules: PLADIS has nothing to act on, "
            "so it cannot be exported with PLADIS (use dense=True for a plain export)"
        )
    originals = {name: module.processor for name, module in modules.items()}
    try:
        for module in modules.values():
            module.set_processor(ExportPLADISProcessor(state, alpha, temperature, style))
        yield len(modules)
    finally:
        for name, module in modules.items():
            module.set_processor(originals[name])


def denoiser_kind(denoiser: Any) -> str:
    """"sd" (SD 1.x/2.x UNet), "sdxl" (UNet with text_time embeddings) or "sana"; ValueError otherwise."""
    name = type(denoiser).__name__
    config = getattr(denoiser, "config", {})
    if name == "UNet2DConditionModel":
        if config.get("time_cond_proj_dim") is not None or config.get("class_embed_type") is not None:
            raise ValueError(
                "ONNX export supports UNets without time_cond_proj_dim / class embeddings (SD1.x/2.x, SDXL); "
                f"this UNet has time_cond_proj_dim={config.get('time_cond_proj_dim')!r}, "
                f"class_embed_type={config.get('class_embed_type')!r}"
            )
        embed = config.get("addition_embed_type")
        if embed is None:
            return "sd"
        if embed == "text_time":
            return "sdxl"
        raise ValueError(f"ONNX export does not support UNets with addition_embed_type={embed!r}")
    if name == "SanaTransformer2DModel":
        if config.get("guidance_embeds"):
            raise ValueError("ONNX export does not support SANA transformers with guidance embeddings (Sprint)")
        return "sana"
    if name == "QwenImageTransformer2DModel":
        raise ValueError(
            "QwenImageTransformer2DModel does not export to ONNX: its RoPE multiplies complex tensors "
            "(torch.view_as_complex), and the TorchScript exporter has no symbolic for aten::view_as_complex"
        )
    raise ValueError(
        "ONNX export supports SD1.x/2.x and SDXL UNets, SANA transformers and the joint-attention FLUX.1, "
        f"FLUX.2 and SD3/3.5 transformers; got {name}"
    )


#: Graph inputs of the denoiser, per kind (``pladis_scale`` is appended unless λ is static).
DENOISER_INPUTS: dict[str, tuple[str, ...]] = {
    "sd": ("sample", "timestep", "encoder_hidden_states"),
    "sdxl": ("sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"),
    "sana": ("sample", "timestep", "encoder_hidden_states", "encoder_attention_mask"),
}


class DenoiserWrapper(torch.nn.Module):
    """``(sample, timestep, encoder_hidden_states, [text_embeds, time_ids | encoder_attention_mask],
    [pladis_scale]) -> noise_pred`` for one denoiser kind; λ goes to the export processors via ``state``."""

    def __init__(self, denoiser: Any, kind: str, state: dict[str, Any], static_scale: float | None) -> None:
        super().__init__()
        self.denoiser, self.kind, self.state, self.static_scale = denoiser, kind, state, static_scale

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(DENOISER_INPUTS[self.kind], inputs, strict=False))  # λ may follow
        if self.static_scale is None:
            self.state["scale"] = inputs[len(DENOISER_INPUTS[self.kind])]
        else:
            self.state["scale"] = float(self.static_scale)
        if self.kind == "sana":
            return self.denoiser(
                named["sample"],
                encoder_hidden_states=named["encoder_hidden_states"],
                encoder_attention_mask=named["encoder_attention_mask"],
                timestep=named["timestep"],
                return_dict=False,
            )[0]
        added = None
        if self.kind == "sdxl":
            added = {"text_embeds": named["text_embeds"], "time_ids": named["time_ids"]}
        return self.denoiser(
            named["sample"],
            named["timestep"],
            encoder_hidden_states=named["encoder_hidden_states"],
            added_cond_kwargs=added,
            return_dict=False,
        )[0]


class TextEncoderWrapper(torch.nn.Module):
    """A text encoder returning exactly what the pipeline reads from it.

    ``mode``: "last" (SD: ``last_hidden_state``), "penultimate" (SDXL: ``hidden_states[-2]``),
    "penultimate+pooled" (SDXL's second encoder: also ``text_embeds``), "masked" (SANA's Gemma:
    ``last_hidden_state`` given ``attention_mask``).
    """

    def __init__(self, encoder: Any, mode: str) -> None:
        super().__init__()
        self.encoder, self.mode = encoder, mode

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        if self.mode == "masked":
            return self.encoder(input_ids, attention_mask=attention_mask)[0]
        if self.mode == "last":
            return self.encoder(input_ids)[0]
        out = self.encoder(input_ids, output_hidden_states=True)
        if self.mode == "penultimate":
            return out.hidden_states[-2]
        return out.hidden_states[-2], out[0]


class VaeDecoderWrapper(torch.nn.Module):
    """``latents (already divided by the scaling factor) -> image in [-1, 1]``."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]
