"""A tiny random-weight Stable Diffusion XL pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import assemble, seeded, tiny_clip_text_encoder, tiny_vae
from pladis_registry.kit.tokenizers import tiny_clip_tokenizer

#: Latent/pixel ratio of the tiny VAE (3 encoder blocks -> 2 downsamplings).
VAE_SCALE_FACTOR = 4
#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np"}
#: ``addition_time_embed_dim`` of the tiny UNet (SDXL: 256).
ADDITION_TIME_EMBED_DIM = 8
#: ``projection_dim`` of ``text_encoder_2`` (SDXL: 1280); it is the pooled-prompt width.
PROJECTION_DIM = 32


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """Build a deterministic tiny ``StableDiffusionXLPipeline`` (``StableDiffusionXLPAGPipeline`` if ``pag``).

    Config (SDXL layout, shrunk):

    * two text encoders, both hidden 32, 2 layers, 4 heads, 77 positions: ``CLIPTextModel`` (quick_gelu)
      and ``CLIPTextModelWithProjection`` (gelu, ``projection_dim=32``); two tiny CLIP tokenizers, the second padding
      with ``"!"`` as SDXL's does.  The UNet sees the two penultimate hidden states concatenated:
      ``cross_attention_dim = 32 + 32 = 64``.
    * ``UNet2DConditionModel``: ``block_out_channels=(32, 64)``, ``layers_per_block=1``, down
      ``(DownBlock2D, CrossAttnDownBlock2D)``, mid ``UNetMidBlock2DCrossAttn``, up ``(CrossAttnUpBlock2D,
      UpBlock2D)``, ``transformer_layers_per_block=(1, 2)`` (the mid block uses 2), ``attention_head_dim=(2, 4)``
      (head counts), ``use_linear_projection=True``; ``addition_embed_type="text_time"``,
      ``addition_time_embed_dim=8`` and ``projection_class_embeddings_input_dim = 6 * 8 + 32 = 80``
      (diffusers: ``addition_time_embed_dim * len(original_size + crops_coords_top_left + target_size)
      + text_encoder_2.config.projection_dim``).  Down, mid and up all hold self- and cross-attention.
    * ``AutoencoderKL``: ``block_out_channels=(8, 16, 16)``, 4 latent channels, scale factor 4,
      ``scaling_factor=0.13025``.
    * ``EulerDiscreteScheduler`` with SDXL's settings (scaled_linear 0.00085..0.012, ``timestep_spacing=
      "leading"``, ``steps_offset=1``); ``force_zeros_for_empty_prompt=True`` (default),
      ``add_watermarker=False``; PAG is applied to ``"mid"``.

    Default image side is ``sample_size * 4`` = 32 px; any multiple of 8 works.  Fast call (~0.05 s on CPU),
    see :data:`FAST_CALL_KWARGS`::

        pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
             generator=torch.Generator().manual_seed(0))

    Built with :mod:`pladis_registry.kit.builders` (each component seeded with ``seed``, the second text
    encoder with ``seed + 1``; the global RNG untouched, the progress bar disabled).
    """
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_clip_tokenizer(pad_token="!")
    with seeded(seed):
        unet = UNet2DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2),
            attention_head_dim=(2, 4), use_linear_projection=True, cross_attention_dim=64,
            addition_embed_type="text_time", addition_time_embed_dim=ADDITION_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=6 * ADDITION_TIME_EMBED_DIM + PROJECTION_DIM, norm_num_groups=8,
        )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    components = dict(
        vae=tiny_vae(seed=seed, sample_size=sample_size * VAE_SCALE_FACTOR, scaling_factor=0.13025),
        text_encoder=tiny_clip_text_encoder(tokenizer, seed=seed, projection_dim=PROJECTION_DIM),
        text_encoder_2=tiny_clip_text_encoder(tokenizer_2, seed=seed + 1, with_projection=True,
                                              projection_dim=PROJECTION_DIM, hidden_act="gelu"),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
        force_zeros_for_empty_prompt=True, add_watermarker=False,
    )
    return assemble("StableDiffusionXLPipeline", components, pag="StableDiffusionXLPAGPipeline" if pag else None,
                    pag_applied_layers="mid")
