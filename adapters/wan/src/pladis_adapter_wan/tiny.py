"""Tiny random-weight Wan pipelines (text- and image-to-video) built offline from the real classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import seeded
from pladis_registry.kit.tokenizers import tiny_t5_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing):
#: 5 frames (Wan needs 4k + 1) of 32 px, a short padded text.
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "num_frames": 5, "height": 32, "width": 32,
                                    "max_sequence_length": 16, "output_type": "np"}
#: Wan's image-to-video attention splits the last 512 encoder tokens off as the text: I2V calls need them.
I2V_CALL_KWARGS: dict[str, Any] = {**FAST_CALL_KWARGS, "max_sequence_length": 512}


def _text_encoder(tokenizer: Any, seed: int) -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    with seeded(seed):
        return UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                           num_heads=2, relative_attention_num_buckets=8, dropout_rate=0.0,
                                           pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval()


def _vae(seed: int) -> Any:
    from diffusers import AutoencoderKLWan

    with seeded(seed):
        return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True])


def _transformer(seed: int, *, in_channels: int = 16, image_dim: int | None = None) -> Any:
    from diffusers import WanTransformer3DModel

    with seeded(seed):
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
            out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim,
            added_kv_proj_dim=None if image_dim is None else 24,
        )


def _scheduler() -> Any:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                   flow_shift=3.0)


def tiny_pipeline(seed: int = 0, *, two_transformers: bool = False, pag: bool = False) -> Any:
    """A deterministic tiny ``WanPipeline`` (Wan 2.1 T2V layout; ``two_transformers``: Wan 2.2 A14B's split,
    ``transformer`` for the high-noise steps and ``transformer_2`` below ``boundary_ratio=0.875``, as A14B).

    * ``WanTransformer3DModel``: 2 blocks, 2 heads x 12, patch (1, 2, 2), ``text_dim=32``, RMS q/k norm
      across heads, cross-attention norm; every block has self- (``attn1``) and text cross-attention (``attn2``).
    * ``UMT5EncoderModel``: width 32, 2 layers, 2 heads; the kit's tiny T5 tokenizer (the pipeline pads the
      text embeddings with zeros to ``max_sequence_length``).
    * ``AutoencoderKLWan``: base width 3, 16 latent channels, 8x spatial / 4x temporal compression.
    * ``UniPCMultistepScheduler`` on flow sigmas, flow shift 3.0 (Wan 2.1 480p).

    Fast call (5 frames of 32 px, see :data:`FAST_CALL_KWARGS`); weights drawn under ``torch.manual_seed``
    (per component) with the global RNG left untouched; the progress bar is disabled.
    """
    from diffusers import WanPipeline

    if pag:
        raise ValueError("pag=True: diffusers has no PAG pipeline for Wan")
    tokenizer = tiny_t5_tokenizer()
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=_text_encoder(tokenizer, seed), vae=_vae(seed), scheduler=_scheduler(),
        transformer=_transformer(seed), transformer_2=_transformer(seed + 1) if two_transformers else None,
        boundary_ratio=0.875 if two_transformers else None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_i2v_pipeline(seed: int = 0) -> Any:
    """A deterministic tiny ``WanImageToVideoPipeline`` (Wan 2.1 I2V layout): as :func:`tiny_pipeline`, plus a
    CLIP vision encoder (hidden 24, 32 px images in 8 px patches: 17 image tokens) whose penultimate states
    the transformer's ``attn2`` attends to in a separate image branch (``add_k_proj``/``add_v_proj``), and
    36 input channels (noise, the encoded first frame and its mask). Calls need ``image=`` (a PIL image) and
    ``max_sequence_length=512`` (:data:`I2V_CALL_KWARGS`): the attention takes the last 512 tokens as text.
    """
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    tokenizer = tiny_t5_tokenizer()
    with seeded(seed):
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=24, projection_dim=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8)).eval()
    processor = CLIPImageProcessor(crop_size=32, size=32, do_center_crop=True, do_normalize=True, do_resize=True,
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], resample=3)
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=_text_encoder(tokenizer, seed), vae=_vae(seed), scheduler=_scheduler(),
        image_processor=processor, image_encoder=image_encoder,
        transformer=_transformer(seed, in_channels=36, image_dim=24),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
