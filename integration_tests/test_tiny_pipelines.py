"""Checks of the tiny random-weight pipelines (SD 1.x, SDXL, SANA) and the offline tokenizers they use."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers.models.attention_processor import Attention  # noqa: E402

from pladis_registry.kit.tokenizers import DEFAULT_WORDS, tiny_clip_tokenizer, tiny_gemma_tokenizer  # noqa: E402

BACKBONES = ("sd15", "sdxl", "sana")
PROMPT = "a photo of a red cat left of a blue circle"


def _tiny(name: str) -> Any:
    return importlib.import_module(f"pladis_adapter_{name}.tiny")


def _call(pipe: Any, name: str, size: int = 32, seed: int = 0, **kwargs: Any) -> np.ndarray:
    args = dict(_tiny(name).FAST_CALL_KWARGS, height=size, width=size, **kwargs)
    return pipe(PROMPT, generator=torch.Generator().manual_seed(seed), **args).images


@pytest.fixture(scope="module")
def pipes() -> dict[tuple[str, bool], Any]:
    return {}


def _pipe(pipes: dict[tuple[str, bool], Any], name: str, pag: bool = False) -> Any:
    if (name, pag) not in pipes:
        pipes[name, pag] = _tiny(name).tiny_pipeline(0, pag=pag)
    return pipes[name, pag]


def _denoiser(pipe: Any) -> Any:
    return pipe.unet if hasattr(pipe, "unet") else pipe.transformer


# --- tokenizers -------------------------------------------------------------------------------------------


def test_clip_tokenizer_whole_words_padding_and_roundtrip(tmp_path: Any) -> None:
    from transformers import CLIPTokenizer

    tok = tiny_clip_tokenizer()
    assert all(len(tok(w, add_special_tokens=False).input_ids) == 1 for w in DEFAULT_WORDS)
    enc = tok(PROMPT, padding="max_length", max_length=tok.model_max_length, truncation=True)
    ids = enc.input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id and tok.pad_token_id == tok.eos_token_id
    assert ids[len(PROMPT.split()) + 1] == tok.eos_token_id and ids[-1] == tok.pad_token_id
    assert max(ids) < len(tok) and {tok.bos_token_id, tok.eos_token_id} == {len(tok) - 2, len(tok) - 1}
    assert tok.decode(ids, skip_special_tokens=True) == PROMPT
    assert len(tok("zebra, 12!", add_special_tokens=False).input_ids) > 1  # unknown words fall back to bytes
    assert tiny_clip_tokenizer(pad_token="!").pad_token_id == 0  # SDXL's tokenizer_2 convention
    tok.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(again) == len(tok) and again(PROMPT + " zebra").input_ids == tok(PROMPT + " zebra").input_ids


def test_gemma_tokenizer_whole_words_padding_and_roundtrip(tmp_path: Any) -> None:
    from transformers import GemmaTokenizer

    tok = tiny_gemma_tokenizer()
    assert all(len(tok(" " + w, add_special_tokens=False).input_ids) == 1 for w in DEFAULT_WORDS)
    tok.padding_side = "right"
    enc = tok(PROMPT, padding="max_length", max_length=32, truncation=True, add_special_tokens=True)
    n = len(PROMPT.split()) + 1
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids[n:] == [tok.pad_token_id] * (32 - n)
    assert enc.attention_mask == [1] * n + [0] * (32 - n)
    assert tok.decode(tok("zebra ü").input_ids, skip_special_tokens=True) == "zebra ü"  # byte fallback
    tok.save_pretrained(tmp_path)
    again = GemmaTokenizer.from_pretrained(tmp_path)
    assert len(again) == len(tok) and again("a zebra ü").input_ids == tok("a zebra ü").input_ids


# --- pipelines ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pag", [False, True], ids=["plain", "pag"])
@pytest.mark.parametrize("name", BACKBONES)
def test_call_is_deterministic_and_finite(pipes: dict, name: str, pag: bool) -> None:
    pipe = _pipe(pipes, name, pag)
    extra = {"pag_scale": 2.0} if pag else {}
    for size in (32, 64):
        first = _call(pipe, name, size, **extra)
        assert first.shape == (1, size, size, 3) and np.isfinite(first).all()
        assert first.std() > 0
        np.testing.assert_array_equal(first, _call(pipe, name, size, **extra))  # (a) same generator
    assert not np.array_equal(_call(pipe, name, seed=0, **extra), _call(pipe, name, seed=1, **extra))


@pytest.mark.parametrize("name", BACKBONES)
def test_construction_is_seeded_and_leaves_global_rng_alone(pipes: dict, name: str) -> None:
    state = torch.get_rng_state()
    again = _tiny(name).tiny_pipeline(0)
    assert torch.equal(state, torch.get_rng_state())
    ref = _denoiser(_pipe(pipes, name)).state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in _denoiser(again).state_dict().items())
    other = _denoiser(_tiny(name).tiny_pipeline(1)).state_dict()
    assert any(not torch.equal(v, ref[k]) for k, v in other.items())


@pytest.mark.parametrize("pag", [False, True], ids=["plain", "pag"])
@pytest.mark.parametrize("name", BACKBONES)
def test_save_and_reload_offline(pipes: dict, name: str, pag: bool, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = _pipe(pipes, name, pag)
    pipe.save_pretrained(tmp_path)
    loaded = type(pipe).from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is type(pipe)
    for key in ("tokenizer", "tokenizer_2"):
        if key in pipe.components:
            old, new = pipe.components[key], loaded.components[key]
            assert type(new) is type(old) and new.pad_token == old.pad_token and len(new) == len(old)
    extra = {"pag_scale": 2.0} if pag else {}
    # Same weights, but safetensors-loaded tensors may sit at other alignments, so CPU matmul kernels can
    # round differently (~1e-7 on the pooled SDXL embedding): compare with a small tolerance.
    np.testing.assert_allclose(_call(loaded, name, **extra), _call(pipe, name, **extra), atol=1e-5)


@pytest.mark.parametrize("name", BACKBONES)
def test_text_encoders_match_tokenizers(pipes: dict, name: str) -> None:
    pipe = _pipe(pipes, name)
    for tok_key, enc_key in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        if tok_key in pipe.components:
            tok, enc = pipe.components[tok_key], pipe.components[enc_key]
            assert enc.config.vocab_size == len(tok)
            assert enc.config.eos_token_id == tok.eos_token_id and enc.config.pad_token_id == tok.pad_token_id


def test_sana_text_mask_has_padding_and_qk_norm(pipes: dict) -> None:
    pipe = _pipe(pipes, "sana")
    _, mask, _, neg_mask = pipe.encode_prompt(
        PROMPT, True, negative_prompt="", max_sequence_length=32, complex_human_instruction=None
    )
    assert mask.shape == (1, 32) and 0 < int(mask.sum()) < 32 and int(neg_mask.sum()) == 1  # "" -> <bos>
    assert pipe.transformer.config.qk_norm == "rms_norm_across_heads"


@pytest.mark.parametrize("name", BACKBONES)
def test_denoiser_has_self_and_cross_attention_everywhere(pipes: dict, name: str) -> None:
    denoiser = _denoiser(_pipe(pipes, name))
    if name == "sana":
        parts = {f"block {i}": blk for i, blk in enumerate(denoiser.transformer_blocks)}
    else:
        parts = {"down": denoiser.down_blocks, "mid": denoiser.mid_block, "up": denoiser.up_blocks}
    for label, part in parts.items():
        attns = [m for m in part.modules() if isinstance(m, Attention)]
        assert any(a.is_cross_attention for a in attns), f"{name}: no cross-attention in {label}"
        assert any(not a.is_cross_attention for a in attns), f"{name}: no self-attention in {label}"
