"""A tiny random-weight Stable Diffusion 1.x pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import assemble, seeded, tiny_clip_text_encoder, tiny_vae
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

    Built with :mod:`pladis_registry.kit.builders` (each component seeded with ``seed``, the global RNG
    untouched, the progress bar disabled).
    """
    from diffusers import DDIMScheduler, UNet2DConditionModel

    tokenizer = tiny_clip_tokenizer()
    with seeded(seed):
        unet = UNet2DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=4,
            norm_num_groups=8,
        )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    components = dict(
        vae=tiny_vae(seed=seed, sample_size=sample_size * VAE_SCALE_FACTOR, scaling_factor=0.18215),
        text_encoder=tiny_clip_text_encoder(tokenizer, seed=seed), tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return assemble("StableDiffusionPipeline", components, pag="StableDiffusionPAGPipeline" if pag else None,
                    pag_applied_layers="mid")
