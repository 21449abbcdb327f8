"""A tiny random-weight SD3.5 pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_clip_tokenizer, tiny_gemma_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {
    "num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np", "max_sequence_length": 16,
    "guidance_scale": 4.5,
}


def tiny_pipeline(seed: int = 0, *, pag: bool = False) -> Any:
    """Build a deterministic tiny ``StableDiffusion3Pipeline`` (SD3.5 layout; ``StableDiffusion3PAGPipeline``
    if ``pag``, PAG on ``"blocks.1"``).

    * ``SD3Transformer2DModel``: 2 blocks, 4 heads x 8, ``patch_size=1``, 4 latent channels,
      ``joint_attention_dim=64``, ``caption_projection_dim=32``, ``pooled_projection_dim=64``,
      ``qk_norm="rms_norm"``, ``dual_attention_layers=(0,)`` (block 0 has SD3.5's image-only ``attn2``).
    * Two ``CLIPTextModelWithProjection`` (hidden 32, projection 32; the kit's CLIP tokenizers, 77
      tokens; the second pads with "!") and a ``T5EncoderModel`` (d_model 64; an offline byte-level BPE
      tokenizer stands in for T5's). Text tokens per prompt: 77 CLIP + ``max_sequence_length`` T5.
    * ``AutoencoderKL``: channels (8, 16, 16) (scale factor 4), 4 latent channels, SD3's shift/scaling.
    * ``FlowMatchEulerDiscreteScheduler(shift=3.0)``.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3PAGPipeline,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_clip_tokenizer(pad_token="!")
    tokenizer_3 = tiny_gemma_tokenizer()
    tokenizer_3.padding_side = "right"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=8, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
            joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64, out_channels=4,
            pos_embed_max_size=16, dual_attention_layers=(0,), qk_norm="rms_norm",
        )
        encoders = []
        for tok in (tokenizer, tokenizer_2):
            torch.manual_seed(seed)
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(
                vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=32, hidden_act="gelu",
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )))
        torch.manual_seed(seed)
        text_encoder_3 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_3), d_model=64, d_kv=16, d_ff=37, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
        ))
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
            latent_channels=4, norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False,
            shift_factor=0.0609, scaling_factor=1.5035,
        )
    components = dict(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=encoders[0], tokenizer=tokenizer, text_encoder_2=encoders[1], tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3,
    )
    pipe = StableDiffusion3PAGPipeline(**components, pag_applied_layers="blocks.1") if pag else (
        StableDiffusion3Pipeline(**components))
    for component in pipe.components.values():  # built modules start in training mode (dropout)
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
