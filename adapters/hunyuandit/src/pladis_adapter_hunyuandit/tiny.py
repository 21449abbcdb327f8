"""A tiny random-weight HunyuanDiT pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import seeded, tiny_t5_encoder
from pladis_registry.kit.tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np",
                                    "use_resolution_binning": False}


def tiny_pipeline(seed: int = 0, *, pag: bool = False) -> Any:
    """A deterministic tiny ``HunyuanDiTPipeline`` (``HunyuanDiTPAGPipeline`` on ``blocks.1`` if ``pag``).

    * ``HunyuanDiT2DModel``: 2 blocks, 2 heads x 8, hidden 16, patch 2, ``learn_sigma``, text of 77 BERT
      tokens (``cross_attention_dim=32``) + 256 mT5 tokens (``cross_attention_dim_t5=32``); every block has
      self- (``attn1``) and text cross-attention (``attn2``, RoPE on its image queries).
    * ``BertModel`` (hidden 32, 2 layers, dropout off) over the kit's tiny CLIP-style tokenizer (77 tokens);
      the kit's T5 encoder (dropout off) and tiny T5 tokenizer as the mT5 text encoder.
    * ``AutoencoderKL`` with 4 blocks (8x: the pipeline's RoPE grid assumes it), 4 latent channels.
    * ``DDPMScheduler`` with scaled-linear betas (as HunyuanDiT's).

    Fast call (64 px, see :data:`FAST_CALL_KWARGS`: ``use_resolution_binning=False`` keeps the tiny size);
    weights drawn under ``torch.manual_seed`` (per component), global RNG untouched; no progress bar.
    """
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        HunyuanDiT2DModel,
        HunyuanDiTPAGPipeline,
        HunyuanDiTPipeline,
    )
    from transformers import BertConfig, BertModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    with seeded(seed):
        text_encoder = BertModel(BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            pad_token_id=tokenizer.pad_token_id)).eval()
    text_encoder_2 = tiny_t5_encoder(tokenizer_2, seed=seed, dropout_rate=0.0).eval()
    with seeded(seed):
        transformer = HunyuanDiT2DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, patch_size=2, activation_fn="gelu-approximate",
            sample_size=8, hidden_size=16, num_layers=2, mlp_ratio=2.0, learn_sigma=True, cross_attention_dim=32,
            norm_type="layer_norm", cross_attention_dim_t5=32, pooled_projection_dim=16, text_len=77, text_len_t5=256,
            use_style_cond_and_image_meta_size=False,
        )
    with seeded(seed):
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16),
                            layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=64,
                            scaling_factor=0.13025)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.03, beta_schedule="scaled_linear", clip_sample=False,
                              steps_offset=1)
    components = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                      scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                      text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
    if pag:
        pipe = HunyuanDiTPAGPipeline(**components, pag_applied_layers="blocks.1")
    else:
        pipe = HunyuanDiTPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe
