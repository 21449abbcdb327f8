"""A tiny random-weight FLUX.2 Klein pipeline built offline from the real diffusers/transformers classes."""

from __future__ import annotations

from typing import Any

from pladis_registry.kit.tokenizers import tiny_gemma_tokenizer

#: Keyword arguments that keep a call of the tiny pipeline cheap and valid (copy before changing).
FAST_CALL_KWARGS: dict[str, Any] = {
    "num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np", "max_sequence_length": 24,
    "guidance_scale": 1.0,
}
#: A chat template in Qwen's format for the offline tokenizer (the pipeline applies one to each prompt).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_pipeline(seed: int = 0) -> Any:
    """Build a deterministic tiny ``Flux2KleinPipeline`` (its transformer is FLUX.2's class).

    * ``Flux2Transformer2DModel``: 2 double-stream (``Flux2Attention``) + 2 parallel single-stream
      (``Flux2ParallelSelfAttention``) blocks, 2 heads x 16, ``in_channels=16``, ``joint_attention_dim=96``
      (3 stacked text-encoder layers of width 32), RoPE axes (4, 4, 4, 4), distilled (no guidance embedding).
    * ``Qwen3ForCausalLM``: hidden 32, 27 layers (the pipeline stacks layers 9, 18, 27), 2 heads (1 KV
      head) x 16; the kit's byte-level BPE tokenizer with a Qwen-style chat template stands in for Qwen2's.
    * ``AutoencoderKLFlux2``: channels (8, 16) (scale factor 2), 4 latent channels, 2x2 patches.
    * ``FlowMatchEulerDiscreteScheduler``.
    """
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = tiny_gemma_tokenizer()
    tokenizer.padding_side = "right"
    tokenizer.chat_template = CHAT_TEMPLATE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(
            patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=96, timestep_guidance_channels=32,
            axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False,
        )
        torch.manual_seed(seed)
        text_encoder = Qwen3ForCausalLM(Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=27,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ))
        torch.manual_seed(seed)
        vae = AutoencoderKLFlux2(
            block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=8,
            sample_size=32,
        )
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        transformer=transformer, is_distilled=True,
    )
    for component in pipe.components.values():  # built modules start in training mode (dropout)
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
