"""A tiny random-weight AnimateDiff pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_clip_tokenizer

#: Latent/pixel ratio of the tiny VAE (3 encoder blocks -> 2 downsamplings).
VAE_SCALE_FACTOR = 4
#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "num_frames": 4, "height": 32, "width": 32,
                                    "output_type": "np"}


def tiny_components(seed: int = 0, *, sample_size: int = 8) -> dict[str, Any]:
    """The deterministic tiny components of an AnimateDiff pipeline: an SD1.5 base (``unet`` is a
    ``UNet2DConditionModel``), a ``motion_adapter``, tokenizer, text encoder, VAE and scheduler.

    Config (SD 1.x + motion adapter layout, shrunk):

    * ``UNet2DConditionModel``: ``block_out_channels=(32, 64)``, ``layers_per_block=1``, down
      ``(CrossAttnDownBlock2D, DownBlock2D)``, mid ``UNetMidBlock2DCrossAttn``, up ``(UpBlock2D,
      CrossAttnUpBlock2D)``, 4 heads, ``cross_attention_dim=32``; the pipeline turns it into a
      ``UNetMotionModel`` with
    * ``MotionAdapter``: ``block_out_channels=(32, 64)``, one motion module per resnet, a motion mid
      block, 2 heads, ``motion_max_seq_length=32`` (at most 32 frames), group norm of 8.
    * ``CLIPTextModel``: hidden 32, 2 layers, 4 heads, 77 positions; the kit's tiny CLIP tokenizer.
    * ``AutoencoderKL``: ``block_out_channels=(8, 16, 16)``, 4 latent channels, scale factor 4.
    * ``DDIMScheduler`` as in diffusers' AnimateDiff example (linear betas, linspace spacing).

    Weights are drawn under ``torch.manual_seed(seed)`` (re-seeded per component) inside
    ``torch.random.fork_rng``, so the global RNG is left untouched.
    """
    import torch
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
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
        motion_adapter = MotionAdapter(
            block_out_channels=(32, 64),
            motion_layers_per_block=1,
            motion_mid_block_layers_per_block=1,
            motion_num_attention_heads=2,
            motion_norm_num_groups=8,
            motion_max_seq_length=32,
            use_motion_mid_block=True,
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
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=motion_adapter,
                scheduler=_scheduler())


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """Build a deterministic tiny ``AnimateDiffPipeline`` (``AnimateDiffPAGPipeline`` if ``pag``) from
    :func:`tiny_components`: the pipeline turns the SD1.5 UNet and the motion adapter into a
    ``UNetMotionModel`` (``from_unet2d``), as when loading real weights.

    Fast call (4 frames of 32 px, see :data:`FAST_CALL_KWARGS`)::

        pipe("a red circle", num_frames=4, num_inference_steps=2, height=32, width=32, output_type="np",
             generator=torch.Generator().manual_seed(0))

    The progress bar is disabled.
    """
    import torch
    from diffusers import AnimateDiffPAGPipeline, AnimateDiffPipeline

    components = tiny_components(seed, sample_size=sample_size)
    with torch.random.fork_rng(devices=[]):  # from_unet2d draws the initial weights it then overwrites
        torch.manual_seed(seed)
        if pag:
            pipe = AnimateDiffPAGPipeline(**components, pag_applied_layers="mid")
        else:
            pipe = AnimateDiffPipeline(**components, feature_extractor=None, image_encoder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                         timestep_spacing="linspace", steps_offset=1)
