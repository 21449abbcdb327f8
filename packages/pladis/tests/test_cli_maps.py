"""Attention maps: the recorder hook leaves images unchanged, records the conditional branch, and
``pladis maps`` writes the Figure-10-style figure from a pipeline folder (``--model DIR``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pladis
from pladis.cli import main
from pladis.cli._attention_maps import AttentionMapStore, install_recorders, prompt_tokens
from pladis.cli.maps import _cond_index

TINY = ["--steps", "2", "--height", "32", "--width", "32", "--device", "cpu"]
PROMPT = "a red circle left of a blue square"


def _tiny(backbone: str):
    import importlib

    module = importlib.import_module(f"pladis_adapter_{backbone}")
    pipe = module.tiny_pipeline(0)
    kwargs = dict(importlib.import_module(f"pladis_adapter_{backbone}.tiny").FAST_CALL_KWARGS)
    return pipe, kwargs


def _image(pipe, kwargs, **extra):
    return pipe(PROMPT, generator=torch.Generator().manual_seed(0), **{**kwargs, **extra}).images[0]


@pytest.mark.parametrize("backbone", ["sd15", "sdxl", "sana"])
def test_recorder_leaves_images_unchanged(backbone):
    pipe, kwargs = _tiny(backbone)
    plain = _image(pipe, kwargs)
    handle = pladis.apply(pipe, scale=2.0, alpha=1.5)
    boosted = _image(pipe, kwargs)

    store = AttentionMapStore(lambda batch: _cond_index(pipe, batch))
    install_recorders(handle, store, baseline=False)
    assert np.array_equal(_image(pipe, kwargs), boosted)  # PLADIS on, recorded: same image
    assert store.steps == 2 and sorted(store.sums) == sorted(handle.layer_names)

    baseline_store = AttentionMapStore(lambda batch: _cond_index(pipe, batch))
    install_recorders(handle, baseline_store, baseline=True)
    assert np.array_equal(_image(pipe, kwargs), plain)  # PLADIS off, recorded: the untouched image
    handle.remove()
    assert np.array_equal(_image(pipe, kwargs), plain)

    for recorded in (store, baseline_store):
        maps = recorded.maps(32, 32)
        # every query's weights sum to 1 over the keys (softmax and α-entmax both do), so do the maps
        torch.testing.assert_close(maps.sum(0), torch.ones(maps.shape[1:]), atol=1e-4, rtol=0)
    assert not torch.allclose(store.maps(32, 32), baseline_store.maps(32, 32))


def test_recorder_reads_the_conditional_branch():
    pipe, kwargs = _tiny("sd15")
    seen: list[tuple[int, int]] = []

    def cond_index(batch: int) -> int:
        seen.append((batch, _cond_index(pipe, batch)))
        return seen[-1][1]

    handle = pladis.apply(pipe)
    install_recorders(handle, AttentionMapStore(cond_index), baseline=False)
    _image(pipe, kwargs, guidance_scale=5.0)  # CFG: batch [uncond, cond]
    assert set(seen) == {(2, 1)}
    seen.clear()
    _image(pipe, kwargs, guidance_scale=1.0)  # no CFG: batch [cond]
    assert set(seen) == {(1, 0)}
    handle.remove()


def test_prompt_tokens_are_the_key_positions():
    pipe, _ = _tiny("sd15")
    tokens = prompt_tokens(pipe.tokenizer, PROMPT, 77)
    assert [text for _, text in tokens] == PROMPT.split()
    assert [position for position, _ in tokens] == list(range(1, 9))  # after <|startoftext|>


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    from pladis_adapter_sdxl import tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "sdxl"
    tiny_pipeline(0).save_pretrained(path)
    return path


def _run(*argv) -> int:
    return main([str(a) for a in argv])


def test_maps_command_writes_figure_sidecar_and_raw_maps(sdxl_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run("maps", PROMPT, "--model", sdxl_dir, *TINY, "--out", "maps", "--max-tokens", "5") == 0
    assert _run("generate", PROMPT, "--model", sdxl_dir, *TINY, "--scale", "0", "--out", "off", "-q") == 0
    assert _run("generate", PROMPT, "--model", sdxl_dir, *TINY, "--out", "on", "-q") == 0
    stem = tmp_path / "maps/00-a-red-circle-left-of-a-blue-square-maps"
    meta = json.loads(stem.with_suffix(".json").read_text())
    figure = Image.open(stem.with_suffix(".png"))
    layout = meta["grid"]
    assert (layout["rows"], layout["cols"]) == (2, 7) and list(figure.size) == layout["size"]  # + colour bar
    assert [t["text"] for t in meta["tokens"]] == ["a", "red", "circle", "left", "of"]
    assert [t["position"] for t in meta["tokens"]] == [1, 2, 3, 4, 5]
    assert meta["recorded"]["steps"] == 2 and len(meta["recorded"]["layers"]) == 8  # every cross-attention
    assert meta["baseline"]["enabled"] is False and meta["pladis"]["scale"] == 2.0
    # the image column shows exactly what `generate` produces with PLADIS off and on: the hook changes nothing
    for row, folder in ((0, "off"), (1, "on")):
        image = Image.open(tmp_path / folder / "00-a-red-circle-left-of-a-blue-square.png").convert("RGB")
        expected = np.asarray(image.resize(tuple(layout["cell"]), Image.Resampling.NEAREST))
        assert np.array_equal(np.asarray(figure.crop(tuple(layout["boxes"][row * 7]))), expected)
        bar = np.asarray(figure.crop(tuple(layout["boxes"][row * 7 + 6])))  # colorize: 1 at the top, 0 at the bottom
        assert tuple(bar[0, 6]) == (252, 253, 191) and tuple(bar[-1, 6]) == (0, 0, 4)
    raw = np.load(stem.with_suffix(".npz"))
    assert raw["baseline"].shape == raw["pladis"].shape == (5, *meta["recorded"]["map_size"])
    assert list(raw["tokens"]) == ["a", "red", "circle", "left", "of"]
    assert raw["baseline"].min() >= 0 and not np.allclose(raw["baseline"], raw["pladis"])


def test_maps_token_selection(sdxl_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run("maps", PROMPT, "--model", sdxl_dir, *TINY, "--tokens", "circle,square", "-q") == 0
    meta = json.loads((tmp_path / "outputs/maps/00-a-red-circle-left-of-a-blue-square-maps.json").read_text())
    assert [(t["position"], t["text"]) for t in meta["tokens"]] == [(3, "circle"), (8, "square")]
    assert meta["grid"]["cols"] == 4  # image, circle, square, colour bar

    capsys.readouterr()
    assert _run("maps", PROMPT, "--model", sdxl_dir, *TINY, "--tokens", "dog") == 2
    err = capsys.readouterr().err  # checked once the tokenizer is loaded: after the loading bars
    errors = [line for line in err.splitlines() if line.startswith("pladis")]
    assert len(errors) == 1 and errors[0].startswith("pladis: error: --tokens: none of ['dog'] is a token of")
    assert "its tokens are ['a', 'red', 'circle'" in errors[0] and "Traceback" not in err


def _encoded_tokens(pipe, backbone: str) -> list[tuple[int, str]]:
    """(key, text) of the ids the pipeline's ``encode_prompt`` gives its text encoder, at each key the
    prompt embedding keeps (special tokens left out)."""
    encoder, tokenizer = (pipe.text_encoder_2, pipe.tokenizer_2) if backbone == "flux" else \
        (pipe.text_encoder, pipe.tokenizer)
    seen = []
    hook = encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("input_ids", args[0] if args else None)),
        with_kwargs=True)
    embeds = pipe.encode_prompt(PROMPT, prompt_2=None, max_sequence_length=24) if backbone == "flux" else \
        pipe.encode_prompt(PROMPT)  # the whole template tail (the tiny tokenizer cuts the system text finer)
    hook.remove()
    keys = embeds[0].shape[1]
    drop = getattr(pipe, "prompt_template_encode_start_idx", 0)
    ids = seen[0][0].tolist()[drop : drop + keys]
    special = set(tokenizer.all_special_ids)
    return [(i, tokenizer.decode([t]).strip()) for i, t in enumerate(ids) if t not in special]


@pytest.mark.parametrize("backbone", ["flux", "qwen_image"])
def test_key_tokens_are_the_tokens_the_pipeline_puts_at_the_text_keys(backbone):
    """FLUX's joint text is T5 (``tokenizer_2``, padded to ``max_sequence_length``); Qwen-Image drops the
    first ``prompt_template_encode_start_idx`` tokens of its chat template."""
    from pladis.cli._attention_maps import key_tokens

    pipe, _ = _tiny(backbone)
    expected = _encoded_tokens(pipe, backbone)
    keys = 24 if backbone == "flux" else expected[-1][0] + 1
    assert key_tokens(pipe, PROMPT, keys) == expected and len(expected) > 3
    words = "".join(text for _, text in expected)
    assert "circle" in words and "square" in words  # the prompt is among the keys


def test_maps_labels_qwen_image_keys_by_their_template_position(tmp_path, monkeypatch, capsys):
    """The figure's columns on the tiny Qwen-Image: --tokens finds the prompt words at the keys where the
    pipeline put them (after the tiny tokenizer's template prefix, not at 1..8 as the bare prompt has them)."""
    from pladis_adapter_qwen_image import tiny_pipeline

    pipe = tiny_pipeline(0)
    pipe.save_pretrained(tmp_path / "qwen")
    where = {text: position for position, text in _encoded_tokens(pipe, "qwen_image")}
    monkeypatch.chdir(tmp_path)
    assert _run("maps", PROMPT, "--model", tmp_path / "qwen", *TINY, "--tokens", "circle,square", "-q",
                "--out", "maps") == 0
    record = json.loads((tmp_path / "maps" / "00-a-red-circle-left-of-a-blue-square-maps.json").read_text())
    assert record["tokens"] == [{"position": where["circle"], "text": "circle"},
                                {"position": where["square"], "text": "square"}]
    assert where["circle"] > 8


def test_sd3_key_tokens_are_clip_then_t5_as_encode_prompt_joins_them():
    """SD3's joint text is the CLIP tokens (77 keys, both CLIP encoders see the same ids) then the T5 ones:
    the labels are the ids ``encode_prompt`` gives ``text_encoder`` and ``text_encoder_3``, at those keys."""
    from pladis.cli._attention_maps import key_tokens

    pipe, _ = _tiny("sd3")
    seen = {}
    hooks = [encoder.register_forward_pre_hook(
        lambda module, args, kwargs, name=name: None if name in seen else seen.update(
            {name: kwargs.get("input_ids", args[0] if args else None)}), with_kwargs=True) for name, encoder in (("clip", pipe.text_encoder), ("t5", pipe.text_encoder_3))]
    embeds = pipe.encode_prompt(PROMPT, prompt_2=None, prompt_3=None, do_classifier_free_guidance=False,
                                max_sequence_length=16)[0]
    for hook in hooks:
        hook.remove()
    clip_len = seen["clip"].shape[-1]
    assert embeds.shape[1] == clip_len + 16
    expected = []
    for offset, ids, tokenizer in ((0, seen["clip"][0].tolist(), pipe.tokenizer), (clip_len, seen["t5"][0].tolist(), pipe.tokenizer_3)):
        special = set(tokenizer.all_special_ids)
        expected += [(offset + i, tokenizer.decode([t]).strip()) for i, t in enumerate(ids) if t not in special]
    assert key_tokens(pipe, PROMPT, embeds.shape[1]) == expected
    assert any(position >= clip_len for position, _ in expected) and any(position < clip_len for position, _ in expected)
