"""Builders of tiny offline components for random-weight test pipelines, so that an adapter's ``tiny.py``
is a config: text encoders (CLIP, T5, Gemma-2) sized to a tokenizer of :mod:`.tokenizers`, small VAEs
(``AutoencoderKL``, ``AutoencoderDC``) and :func:`assemble` for the pipeline itself.

Every builder draws its weights under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``
(:func:`seeded`), so a component depends on its own seed only and the global RNG is left untouched.
Keyword arguments beyond the named ones go to the component's config class unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = [
    "assemble",
    "seeded",
    "tiny_clip_text_encoder",
    "tiny_dc_autoencoder",
    "tiny_gemma2_encoder",
    "tiny_t5_encoder",
    "tiny_vae",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with ``torch.manual_seed(seed)`` and put the global RNG state back afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _special_ids(tokenizer: Any) -> dict[str, Any]:
    return {f"{kind}_token_id": getattr(tokenizer, f"{kind}_token_id", None) for kind in ("bos", "eos", "pad")}


def tiny_clip_text_encoder(tokenizer: Any, *, seed: int = 0, with_projection: bool = False, hidden_size: int = 32,
                           num_hidden_layers: int = 2, num_attention_heads: int = 4, projection_dim: int = 32,
                           **config: Any) -> Any:
    """A ``CLIPTextModel`` (``CLIPTextModelWithProjection`` if ``with_projection``) over ``tokenizer``'s
    vocabulary: hidden 32, 2 layers, 4 heads, 77 positions, MLP 2 x hidden by default."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    settings = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                    num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                    max_position_embeddings=77, projection_dim=projection_dim, **_special_ids(tokenizer))
    settings.update(config)
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with seeded(seed):
        return model_class(CLIPTextConfig(**settings))


def tiny_t5_encoder(tokenizer: Any, *, seed: int = 0, d_model: int = 32, num_layers: int = 2, num_heads: int = 2,
                    **config: Any) -> Any:
    """A ``T5EncoderModel`` over ``tokenizer``'s vocabulary (e.g. :func:`.tokenizers.tiny_t5_tokenizer`):
    width 32, 2 layers, 2 heads x 16, feed-forward 64, gated GELU as T5 v1.1 (PixArt's, SD3's encoder)."""
    from transformers import T5Config, T5EncoderModel

    settings = dict(vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=2 * d_model,
                    num_layers=num_layers, num_heads=num_heads, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    decoder_start_token_id=tokenizer.pad_token_id)
    settings.update(config)
    with seeded(seed):
        return T5EncoderModel(T5Config(**settings))


def tiny_gemma2_encoder(tokenizer: Any, *, seed: int = 0, hidden_size: int = 32, num_hidden_layers: int = 2,
                        **config: Any) -> Any:
    """A ``Gemma2Model`` over ``tokenizer``'s vocabulary (e.g. :func:`.tokenizers.tiny_gemma_tokenizer`):
    hidden 32, 2 layers, 2 heads (1 KV head) x 16, eager attention (SANA's text encoder, shrunk)."""
    from transformers import Gemma2Config, Gemma2Model

    settings = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                    num_hidden_layers=num_hidden_layers, num_attention_heads=2, num_key_value_heads=1,
                    head_dim=hidden_size // 2, max_position_embeddings=8192, attn_implementation="eager",
                    **_special_ids(tokenizer))
    settings.update(config)
    with seeded(seed):
        return Gemma2Model(Gemma2Config(**settings))


def tiny_vae(*, seed: int = 0, sample_size: int = 32, scaling_factor: float = 0.18215, latent_channels: int = 4,
             **config: Any) -> Any:
    """An ``AutoencoderKL`` with ``block_out_channels=(8, 16, 16)``: scale factor 4 (3 blocks, 2 downsamplings);
    ``scaling_factor`` as the real model's (SD 1.x 0.18215, SDXL 0.13025)."""
    from diffusers import AutoencoderKL

    settings = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                    up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                    latent_channels=latent_channels, norm_num_groups=4, sample_size=sample_size,
                    scaling_factor=scaling_factor)
    settings.update(config)
    with seeded(seed):
        return AutoencoderKL(**settings)


def tiny_dc_autoencoder(*, seed: int = 0, scaling_factor: float = 0.41407, latent_channels: int = 4,
                        **config: Any) -> Any:
    """An ``AutoencoderDC`` (SANA's deep-compression VAE) with blocks ``(ResBlock, EfficientViTBlock,
    EfficientViTBlock)`` of channels ``(8, 16, 16)``: scale factor 4."""
    from diffusers import AutoencoderDC

    blocks = ("ResBlock", "EfficientViTBlock", "EfficientViTBlock")
    settings = dict(in_channels=3, latent_channels=latent_channels, attention_head_dim=8,
                    encoder_block_types=blocks, decoder_block_types=blocks,
                    encoder_block_out_channels=(8, 16, 16), decoder_block_out_channels=(8, 16, 16),
                    encoder_qkv_multiscales=((), (5,), (5,)), decoder_qkv_multiscales=((), (5,), (5,)),
                    encoder_layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
                    downsample_block_type="conv", upsample_block_type="interpolate",
                    decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=scaling_factor)
    settings.update(config)
    with seeded(seed):
        return AutoencoderDC(**settings)


def assemble(pipeline: str, components: dict[str, Any], *, pag: str | None = None,
             pag_applied_layers: str | list[str] | None = None) -> Any:
    """``diffusers.<pipeline>(**components)`` -- or ``diffusers.<pag>(..., pag_applied_layers=...)`` when
    ``pag`` names the PAG pipeline class -- with every model in eval mode (as ``from_pretrained`` leaves it:
    no dropout, so equal seeds give equal images) and the progress bar disabled."""
    import diffusers
    import torch

    for component in components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()

    if pag is not None:
        pipe = getattr(diffusers, pag)(**components, pag_applied_layers=pag_applied_layers)
    else:
        pipe = getattr(diffusers, pipeline)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe
