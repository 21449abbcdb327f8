"""LTX-Video adapter: the contract on the tiny pipeline (text cross-attention attn2 only), the padded text
mask in both branches of Eq. 15, presets."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import pladis  # noqa: E402
from pladis_adapter_ltx import SPEC, tiny_pipeline  # noqa: E402
from pladis_adapter_ltx.tiny import FAST_CALL_KWARGS  # noqa: E402
from pladis_registry.testing import check_adapter, isolated_registry  # noqa: E402

PROMPT = "a red circle left of a blue square"


def _text_attention(denoiser: Any) -> list[str]:
    """LTXAttention has no ``is_cross_attention``: the text cross-attention is every block's attn2."""
    return [name for name, _ in denoiser.named_modules() if re.fullmatch(r"transformer_blocks\.\d+\.attn2", name)]


def test_adapter_contract() -> None:
    check_adapter(SPEC, text_attention=_text_attention)


def test_preset_is_the_pipeline_example() -> None:
    assert SPEC.preset().call_kwargs() == {"guidance_scale": 3.0, "num_inference_steps": 50, "height": 480,
                                           "width": 704, "num_frames": 161}


def test_padded_text_is_masked_in_both_branches() -> None:
    """The pipeline pads the T5 text and masks the padding (an additive −10000 bias in attn2): with PLADIS
    on (λ = 1: entmax alone; λ = 2: both branches) what the padded embeddings hold does not matter."""
    pipe = tiny_pipeline(0)
    registry = isolated_registry(SPEC)
    embeds, mask, negative, negative_mask = pipe.encode_prompt(PROMPT, max_sequence_length=16)
    assert 0 < int(mask.sum()) < mask.numel()  # the prompt is padded
    scrambled = embeds.clone()
    scrambled[mask == 0] = torch.randn(int((mask == 0).sum()), embeds.shape[-1],
                                       generator=torch.Generator().manual_seed(1))
    call = {key: value for key, value in FAST_CALL_KWARGS.items() if key != "max_sequence_length"}

    def run(prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor) -> np.ndarray:
        return pipe(prompt_embeds=prompt_embeds, prompt_attention_mask=prompt_mask, negative_prompt_embeds=negative,
                    negative_prompt_attention_mask=negative_mask, generator=torch.Generator().manual_seed(0),
                    **call).frames

    for scale in (1.0, 2.0):
        with pladis.enabled(pipe, scale=scale, registry=registry):
            clean, noisy = run(embeds, mask), run(scrambled, mask)
            unmasked = run(scrambled, torch.ones_like(mask))
        np.testing.assert_allclose(clean, noisy, atol=1e-6, rtol=0)
        assert np.abs(unmasked - clean).max() > 1e-4
