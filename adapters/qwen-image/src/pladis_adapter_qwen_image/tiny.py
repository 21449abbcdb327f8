"""A tiny random-weight Qwen-Image pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_gemma_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {
    "num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np", "true_cfg_scale": 4.0,
    "negative_prompt": "blurry",
}


def tiny_pipeline(seed: int = 0) -> Any:
    """Build a deterministic tiny ``QwenImagePipeline``.

    * ``QwenImageTransformer2DModel``: 2 blocks, 2 heads x 16, ``patch_size=2``, 16 input channels (4 latent
      channels packed 2x2), ``joint_attention_dim=32``, RoPE axes (4, 6, 6).
    * ``Qwen2_5_VLForConditionalGeneration``: text hidden 32, 2 layers, 2 heads (1 KV head) x 16, a
      2-layer vision tower of width 32 (unused for text); the kit's byte-level BPE tokenizer (padding on
      the right) stands in for Qwen2's. The pipeline drops the first 34 template tokens and pads prompts
      of a batch to the longest: prompt and negative prompt of different lengths give a padded text mask.
    * ``AutoencoderKLQwenImage``: base width 8, ``dim_mult=(1, 2, 2)`` (scale factor 4), 4 latent channels.
    * ``FlowMatchEulerDiscreteScheduler``.
    """
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = tiny_gemma_tokenizer()
    tokenizer.padding_side = "right"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 6, 6),
        )
        torch.manual_seed(seed)
        config = Qwen2_5_VLConfig(
            text_config={
                "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 512,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 37, "num_heads": 2,
                           "out_hidden_size": 32, "fullatt_block_indexes": [1]},
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        text_encoder = Qwen2_5_VLForConditionalGeneration(config)
        torch.manual_seed(seed)
        vae = AutoencoderKLQwenImage(
            base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, temperal_downsample=[False, True],
            latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
        )
    pipe = QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        transformer=transformer,
    )
    for component in pipe.components.values():  # built modules start in training mode (dropout)
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
