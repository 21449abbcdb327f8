"""A tiny random-weight PixArt-Sigma pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import assemble, seeded, tiny_t5_encoder, tiny_vae
from pladis_registry.kit.tokenizers import tiny_t5_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing):
#: no aspect-ratio binning (it would render at 256 px or more), a short text length, no caption cleaning
#: (it needs bs4 and ftfy).
FAST_CALL_KWARGS: dict[str, Any] = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np",
                                    "use_resolution_binning": False, "max_sequence_length": 32,
                                    "clean_caption": False}
#: The PixArt-Sigma scheduler config (DPM-Solver++ 2M over linear betas, epsilon prediction).
SCHEDULER_CONFIG: dict[str, Any] = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                                    "algorithm_type": "dpmsolver++", "solver_order": 2, "prediction_type": "epsilon"}


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """A deterministic tiny ``PixArtSigmaPipeline`` (``PixArtSigmaPAGPipeline`` if ``pag``, PAG on block 1):
    ``PixArtTransformer2DModel`` (``ada_norm_single``, 2 blocks of 2 heads x 8, learned sigma: 8 output
    channels, patch 2, latent side ``sample_size``), a T5 encoder of width 32, the tiny SDXL-style VAE."""
    from diffusers import DPMSolverMultistepScheduler, PixArtTransformer2DModel

    tokenizer = tiny_t5_tokenizer()
    with seeded(seed):
        transformer = PixArtTransformer2DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
            cross_attention_dim=16, caption_channels=32, sample_size=sample_size, patch_size=2,
            norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, attention_bias=True,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000, use_additional_conditions=False,
        )
    components = dict(tokenizer=tokenizer, text_encoder=tiny_t5_encoder(tokenizer, seed=seed),
                      vae=tiny_vae(seed=seed, sample_size=sample_size * 4, scaling_factor=0.13025),
                      transformer=transformer, scheduler=DPMSolverMultistepScheduler(**SCHEDULER_CONFIG))
    return assemble("PixArtSigmaPipeline", components, pag="PixArtSigmaPAGPipeline" if pag else None,
                    pag_applied_layers="blocks.1")
