"""A tiny random-weight Stable Diffusion 1.x pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_clip_tokenizer

#: Latent/pixel ratio of the tiny VAE (3 encoder blocks -> 2 downsamplings).
VAE_SCALE_FACTOR = 4
#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np"}


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """Build a deterministic tiny ``StableDiffusionPipeline`` (``StableDiffusionPAGPipeline`` if ``pag``).

    Config (SD 1.x layout, shrunk):

    * ``UNet2DConditionModel``: ``block_out_channels=(32, 64)``, ``layers_per_block=1``, down
      ``(CrossAttnDownBlock2D, DownBlock2D)``, mid ``UNetMidBlock2DCrossAttn``, up ``(UpBlock2D,
      CrossAttnUpBlock2D)`` -- so down, mid and up all hold self- (``attn1``) and cross- (``attn2``)
      attention -- ``attention_head_dim=4`` (diffusers' name for the head count: 4 heads),
      ``cross_attention_dim=32``, ``sample_size=sample_size`` (latent side).
    * ``CLIPTextModel``: hidden 32, 2 layers, 4 heads, 77 positions; tokenizer from
      :func:`pladis_registry.kit.tokenizers.tiny_clip_tokenizer` (pad = eos, max length 77).
    * ``AutoencoderKL``: ``block_out_channels=(8, 16, 16)``, 4 latent channels, scale factor
      :data:`VAE_SCALE_FACTOR` = 4, ``scaling_factor=0.18215``.
    * ``DDIMScheduler`` with SD 1.x betas (scaled_linear 0.00085..0.012, ``steps_offset=1``).
    * ``safety_checker=None``, ``feature_extractor=None``, ``requires_safety_checker=False``; PAG is applied
      to ``"mid"`` (diffusers' default).

    Default image side is ``sample_size * 4`` = 32 px; any multiple of 8 works.  Fast call (~0.05 s on CPU),
    see :data:`FAST_CALL_KWARGS`::

        pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
             generator=torch.Generator().manual_seed(0))

    Weights are drawn under ``torch.manual_seed(seed)`` (re-seeded per component) inside
    ``torch.random.fork_rng``, so the global RNG is left untouched.  The progress bar is disabled.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPAGPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            mid_block_type="UNetMidBlock2DCrossAttn",
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(8, 16, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=sample_size * VAE_SCALE_FACTOR,
            scaling_factor=0.18215,
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    components = dict(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if pag:
        pipe = StableDiffusionPAGPipeline(**components, pag_applied_layers="mid")
    else:
        pipe = StableDiffusionPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe
