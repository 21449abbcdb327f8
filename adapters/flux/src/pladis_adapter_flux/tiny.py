"""A tiny random-weight FLUX.1 pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_clip_tokenizer, tiny_gemma_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {
    "num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np", "max_sequence_length": 16,
    "guidance_scale": 3.5,
}


def tiny_t5(vocab_size: int, d_model: int = 32) -> Any:
    """A 2-layer ``T5EncoderModel`` (4 heads x 8, feed-forward 37)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
    ))


def tiny_t5_tokenizer() -> Any:
    """An offline stand-in for T5's tokenizer (no SentencePiece model here): the kit's byte-level BPE with
    ``<pad>`` = 0, padding on the right as T5's."""
    tokenizer = tiny_gemma_tokenizer()
    tokenizer.padding_side = "right"
    return tokenizer


def tiny_pipeline(seed: int = 0, *, guidance_embeds: bool = True) -> Any:
    """Build a deterministic tiny ``FluxPipeline`` (FLUX.1-dev layout; ``guidance_embeds=False``: schnell).

    * ``FluxTransformer2DModel``: 2 double-stream + 2 single-stream blocks, 2 heads x 16, ``in_channels=4``
      (1 latent channel packed 2x2), ``joint_attention_dim=32``, ``pooled_projection_dim=32``, RoPE axes
      (4, 4, 8).
    * ``CLIPTextModel`` (hidden 32, 2 layers; the kit's CLIP tokenizer, 77 tokens) and ``T5EncoderModel``
      (d_model 32, 2 layers; :func:`tiny_t5_tokenizer`).
    * ``AutoencoderKL``: channels (8, 16) (scale factor 2), 1 latent channel, FLUX's shift/scaling factors.
    * ``FlowMatchEulerDiscreteScheduler``.

    32x32 images give 16x16 latents, 64 image tokens; ``max_sequence_length=16`` T5 tokens. Weights are
    drawn under ``torch.manual_seed(seed)`` per component inside ``fork_rng`` (the global RNG is untouched).
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=4, num_layers=2, num_single_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
            guidance_embeds=guidance_embeds, axes_dims_rope=(4, 4, 8),
        )
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ))
        torch.manual_seed(seed)
        text_encoder_2 = tiny_t5(len(tokenizer_2))
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
            latent_channels=1, norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False,
            shift_factor=0.0609, scaling_factor=1.5035,
        )
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )
    for component in pipe.components.values():  # built modules start in training mode (dropout)
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
