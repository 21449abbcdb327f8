"""A tiny random-weight SANA pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.builders import assemble, seeded, tiny_dc_autoencoder, tiny_gemma2_encoder
from pladis_registry.kit.tokenizers import tiny_gemma_tokenizer

#: Latent/pixel ratio of the tiny DC-AE (3 encoder blocks -> 2 downsamplings; SANA's is 32).
VAE_SCALE_FACTOR = 4
#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {
    "num_inference_steps": 2,
    "height": 32,
    "width": 32,
    "output_type": "np",
    "use_resolution_binning": False,
    "complex_human_instruction": None,
    "max_sequence_length": 32,
}


def tiny_pipeline(seed: int = 0, *, sample_size: int = 8, pag: bool = False) -> Any:
    """Build a deterministic tiny ``SanaPipeline`` (``SanaPAGPipeline`` if ``pag``).

    Config (SANA 1.5 layout, shrunk):

    * ``SanaTransformer2DModel``: 2 blocks, width 32 (2 heads x 16), linear self-attention (``attn1``,
      ``SanaLinearAttnProcessor2_0``) and softmax cross-attention (``attn2``: 2 heads x 16,
      ``cross_attention_dim=32``) in every block, ``caption_channels=32``, ``mlp_ratio=2.5``,
      ``qk_norm="rms_norm_across_heads"`` (as SANA 1.5), ``patch_size=1``, 4 latent channels,
      ``sample_size=sample_size`` (latent side).
    * ``Gemma2Model``: hidden 32, 2 layers, 2 heads (1 KV head) x 16, eager attention, vocabulary of
      :func:`pladis_registry.kit.tokenizers.tiny_gemma_tokenizer` (``<bos>`` prepended, ``<pad>`` = 0).
      SanaPipeline pads to ``max_sequence_length`` on the right, so the text mask has zeros; the
      transformer turns it into an additive bias for cross-attention.
    * ``AutoencoderDC``: blocks ``(ResBlock, EfficientViTBlock, EfficientViTBlock)`` with channels
      ``(8, 16, 16)``, scale factor 4, ``scaling_factor=0.41407``.
    * ``FlowMatchEulerDiscreteScheduler(shift=3.0)``; PAG is applied to ``"transformer_blocks.0"``.

    Call quirks: ``height``/``width`` must be multiples of 32; pass ``use_resolution_binning=False`` (the
    aspect-ratio bins exist only for transformer sample sizes 16/32/64/128 and would render at 512 px or
    more; with ``sample_size=8`` leaving it on raises "Invalid sample size"); pass
    ``complex_human_instruction=None`` (the default prepends a long instruction, ~1000 tiny-vocab tokens, to
    the prompt only -- not to the negative prompt -- and makes the call ~4x slower) and a short
    ``max_sequence_length`` (default 300).  Fast call (~0.03 s on CPU), see :data:`FAST_CALL_KWARGS`::

        pipe("a red circle", num_inference_steps=2, height=32, width=32, output_type="np",
             use_resolution_binning=False, complex_human_instruction=None, max_sequence_length=32,
             generator=torch.Generator().manual_seed(0))

    Built with :mod:`pladis_registry.kit.builders` (each component seeded with ``seed``, the global RNG
    untouched, the progress bar disabled).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaTransformer2DModel

    tokenizer = tiny_gemma_tokenizer()
    with seeded(seed):
        transformer = SanaTransformer2DModel(
            in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=2,
            num_cross_attention_heads=2, cross_attention_head_dim=16, cross_attention_dim=32, caption_channels=32,
            mlp_ratio=2.5, sample_size=sample_size, patch_size=1, qk_norm="rms_norm_across_heads",
        )
    components = dict(tokenizer=tokenizer, text_encoder=tiny_gemma2_encoder(tokenizer, seed=seed),
                      vae=tiny_dc_autoencoder(seed=seed), transformer=transformer,
                      scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    return assemble("SanaPipeline", components, pag="SanaPAGPipeline" if pag else None,
                    pag_applied_layers="transformer_blocks.0")
