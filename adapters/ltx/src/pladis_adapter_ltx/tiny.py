"""A tiny random-weight LTX-Video pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import seeded, tiny_t5_encoder
from pladis_registry.kit.tokenizers import tiny_t5_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing):
#: 9 frames (LTX needs 8k + 1) of 32 px, a short padded (masked) text.
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "num_frames": 9, "height": 32, "width": 32,
                                    "max_sequence_length": 16, "output_type": "np"}


def tiny_pipeline(seed: int = 0, *, pag: bool = False) -> Any:
    """A deterministic tiny ``LTXPipeline``.

    * ``LTXVideoTransformer3DModel``: 2 blocks, 2 heads x 8, patch 1, ``cross_attention_dim=16``,
      ``caption_channels=32``, RMS q/k norm across heads; every block has self- (``attn1``) and text
      cross-attention (``attn2``, which gets the padded text mask as an additive bias).
    * ``T5EncoderModel`` of the kit (width 32, 2 layers; dropout off) with the kit's tiny T5 tokenizer.
    * ``AutoencoderKLLTXVideo``: 8 latent channels, width 8, 4x spatial and temporal compression.
    * ``FlowMatchEulerDiscreteScheduler``.

    Fast call (9 frames of 32 px, see :data:`FAST_CALL_KWARGS`); weights drawn under ``torch.manual_seed``
    (per component) with the global RNG left untouched; the progress bar is disabled.
    """
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    if pag:
        raise ValueError("pag=True: diffusers has no PAG pipeline for LTX-Video")
    tokenizer = tiny_t5_tokenizer()
    text_encoder = tiny_t5_encoder(tokenizer, seed=seed, dropout_rate=0.0).eval()
    with seeded(seed):
        transformer = LTXVideoTransformer3DModel(
            in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
            cross_attention_dim=16, num_layers=2, caption_channels=32, qk_norm="rms_norm_across_heads",
        )
    with seeded(seed):
        vae = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
            upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False,
            patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False,
        )
    pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                       tokenizer=tokenizer, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe
