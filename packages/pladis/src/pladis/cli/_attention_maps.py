"""Recording per-token cross-attention maps without changing the images (the paper's Figure 10).

:class:`AttentionMapRecorder` is a :class:`pladis.PLADISAttnProcessor` whose ``attend`` returns exactly
what the parent's returns and, on the side, adds the head-averaged attention weights of the conditional
branch (computed with :func:`pladis.attention.pladis_weights`: Eq. 15 when PLADIS is active, softmax
otherwise) to an :class:`AttentionMapStore`. The store averages them over denoising steps, upsamples each
layer's map to a common size and averages over layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from pladis.attention import pladis_weights
from pladis.intercept import InterceptProcessor
from pladis.joint import joint_block_weights
from pladis.processor import PLADISAttnProcessor

__all__ = ["AttentionMapRecorder", "AttentionMapStore", "install_recorders", "key_tokens", "prompt_tokens"]


class AttentionMapStore:
    """Sums of (queries × keys) attention maps per layer, of the batch element ``cond_index(batch)``."""

    def __init__(self, cond_index: Callable[[int], int] | None = None,
                 queries: Callable[[int], slice] | None = None) -> None:
        self.cond_index = cond_index or (lambda batch: 0)
        # queries(n): the query tokens recorded out of an intercepted cross-attention call's n (a video
        # denoiser's (frames, h, w) tokens: one frame's); None: all of them
        self.queries = queries
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, weights: torch.Tensor) -> None:
        """Add one call's head-averaged weights, shaped (queries, keys)."""
        if name in self.sums:
            self.sums[name] += weights
            self.counts[name] += 1
        else:
            self.sums[name] = weights.clone()
            self.counts[name] = 1

    @property
    def steps(self) -> int:
        return max(self.counts.values(), default=0)

    def maps(self, height: int, width: int) -> torch.Tensor:
        """Per-key maps (keys, h, w) averaged over steps, then over layers after bilinear upsampling
        to the largest layer resolution; ``height``/``width`` give the aspect ratio of the queries."""
        if not self.sums:
            raise RuntimeError("no cross-attention call was recorded")
        grids = []
        for name, total in self.sums.items():
            queries, keys = total.shape
            h = round(math.sqrt(queries * height / width))
            if h == 0 or queries % h:
                raise RuntimeError(f"layer {name!r}: {queries} queries do not form a {height}:{width} grid")
            grids.append((total / self.counts[name]).float().T.reshape(keys, h, queries // h))
        size = (max(g.shape[1] for g in grids), max(g.shape[2] for g in grids))
        upsampled = [F.interpolate(g[None], size=size, mode="bilinear", align_corners=False)[0] for g in grids]
        return torch.stack(upsampled).mean(0).cpu()


class AttentionMapRecorder(PLADISAttnProcessor):
    """A PLADIS processor that also records head-averaged attention maps; its output is unchanged."""

    def __init__(self, *args: Any, name: str, store: AttentionMapStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name
        self.store = store

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, active: bool) -> torch.Tensor:
        output = super().attend(query, key, value, attention_mask, active)
        with torch.no_grad():
            batch = query.shape[0]
            i = self.store.cond_index(batch)
            mask = attention_mask
            if mask is not None and mask.ndim == 4 and mask.shape[0] == batch:
                mask = mask[i : i + 1]
            weights = pladis_weights(
                query[i : i + 1], key[i : i + 1], scale=self.scale if active else 0.0, alpha=self.alpha,
                temperature=self.temperature, attn_mask=mask,
            )
            self.store.add(self.name, weights[0].mean(0))
        return output


def install_recorders(handle: Any, store: AttentionMapStore, *, baseline: bool) -> None:
    """Replace the processors ``pladis.apply`` installed (``handle``) by recorders with the same settings.

    ``baseline``: record plain softmax attention — the recorders get λ = 0 and no ``original`` to delegate
    to, so they run diffusers' exact SDPA call. ``handle.remove()`` restores the original processors.
    """
    for name, module in handle.modules.items():
        installed = module.processor
        if isinstance(installed, InterceptProcessor):  # joint: the image × text block; cross: text keys
            record = _joint_recorder if installed.config.kind == "joint" else _cross_recorder
            installed.recorder = record(name, store, installed, baseline)
            continue
        module.set_processor(AttentionMapRecorder(
            0.0 if baseline else installed.scale, installed.alpha, installed.temperature,
            original=None if baseline else getattr(installed, "original", None),
            style=getattr(installed, "style", None), window=getattr(installed, "window", None),
            name=name, store=store,
        ))


def _joint_recorder(name: str, store: AttentionMapStore, processor: Any, baseline: bool) -> Any:
    """A recorder for an intercepted joint product: the head-averaged image × text block of the weights
    (λ = 0 for the baseline, else the processor's λ while active)."""

    def record(query, key, value, attn_mask, text, active) -> None:
        if processor.context.calls_at_timestep > 1:  # true CFG's separate negative-prompt call (Qwen-Image)
            return
        with torch.no_grad():
            i = store.cond_index(query.shape[0])
            mask = attn_mask[i : i + 1] if attn_mask is not None and attn_mask.shape[0] == query.shape[0] else attn_mask
            block = joint_block_weights(
                query[i : i + 1], key[i : i + 1], value[i : i + 1], mask, text=text,
                scale=processor.scale if active and not baseline else 0.0, alpha=processor.alpha,
                temperature=processor.temperature,
            )
            store.add(name, block[0].mean(0))

    if baseline:  # the baseline row runs dense attention: the wrapper leaves every product to SDPA
        processor.scale = 0.0
    return record


def _cross_recorder(name: str, store: AttentionMapStore, processor: Any, baseline: bool) -> Any:
    """A recorder for an intercepted text cross-attention product (Wan, LTX-Video): the head-averaged weights
    of the queries ``store.queries`` picks (one frame's tokens) over the text keys."""

    def record(query, key, value, attn_mask, text, active) -> None:
        if processor.context.calls_at_timestep > 1:  # Wan's separate unconditional call
            return
        with torch.no_grad():
            batch = query.shape[0]
            i = store.cond_index(batch)
            rows = store.queries(query.shape[-2]) if store.queries is not None else slice(None)
            mask = attn_mask
            if mask is not None and mask.ndim == 4:
                mask = mask[i : i + 1] if mask.shape[0] == batch else mask
                mask = mask[..., rows, :] if mask.shape[-2] == query.shape[-2] else mask
            weights = pladis_weights(
                query[i : i + 1, ..., rows, :], key[i : i + 1], scale=processor.scale if active and not baseline
                else 0.0, alpha=processor.alpha, temperature=processor.temperature, attn_mask=mask,
            )
            store.add(name, weights[0].mean(0))

    if baseline:  # the baseline row runs dense attention: the wrapper leaves every product to SDPA
        processor.scale = 0.0
    return record


def prompt_tokens(tokenizer: Any, prompt: str, keys: int) -> list[tuple[int, str]]:
    """(key position, text) of the prompt's tokens as the text encoder saw them, special tokens left out.

    The prompt is tokenized as diffusers' pipelines do (padded/truncated to ``keys`` tokens), so position
    ``i`` is cross-attention key ``i``.
    """
    return _labels(tokenizer, tokenizer(prompt, padding="max_length", max_length=keys, truncation=True).input_ids)


def key_tokens(pipe: Any, prompt: str, keys: int | None = None) -> list[tuple[int, str]]:
    """(key position, text) of the tokens at the ``keys`` text keys of ``pipe``'s attention (None: as many
    as its tokenizer keeps, at most 512), special tokens left out, tokenized as the pipeline's own
    ``encode_prompt`` does:

    * a chat-template pipeline (Qwen-Image: ``prompt_template_encode``, ``prompt_template_encode_start_idx``):
      the templated prompt, its first ``start_idx`` tokens dropped — key ``i`` is template token
      ``start_idx + i`` (the template's closing tokens after the prompt included);
    * a T5 joint text (FLUX: ``_get_t5_prompt_embeds`` on ``tokenizer_2``): the T5 tokens;
    * CLIP then T5 (SD3: ``tokenizer`` at keys 0…76, ``tokenizer_3`` from key 77 on);
    * otherwise the pipeline's ``tokenizer`` (:func:`prompt_tokens`); no tokenizer: ``#i``.
    """
    template = getattr(pipe, "prompt_template_encode", None)
    drop = getattr(pipe, "prompt_template_encode_start_idx", None)
    tokenizer = getattr(pipe, "tokenizer", None)
    if isinstance(template, str) and isinstance(drop, int) and tokenizer is not None:
        limit = int(getattr(pipe, "tokenizer_max_length", 1024) or 1024)
        ids = tokenizer(template.format(prompt), max_length=limit + drop, truncation=True).input_ids[drop:]
        return _labels(tokenizer, ids[: keys or limit])
    t5_after_clip = getattr(pipe, "tokenizer_3", None)
    if t5_after_clip is not None and tokenizer is not None and hasattr(type(pipe), "_get_t5_prompt_embeds"):
        clip = int(getattr(pipe, "tokenizer_max_length", 77) or 77)
        t5_keys = (keys - clip) if keys else 256
        t5_ids = t5_after_clip(prompt, padding="max_length", max_length=max(t5_keys, 1), truncation=True).input_ids
        return prompt_tokens(tokenizer, prompt, min(keys or clip, clip)) + [
            (clip + i, text) for i, text in _labels(t5_after_clip, t5_ids[:max(t5_keys, 0)])]
    t5 = getattr(pipe, "tokenizer_2", None)
    if t5 is not None and hasattr(type(pipe), "_get_t5_prompt_embeds") and t5_after_clip is None:
        tokenizer = t5
    if tokenizer is None:
        return [(i, f"#{i}") for i in range(keys or 0)]
    return prompt_tokens(tokenizer, prompt, keys or min(int(getattr(tokenizer, "model_max_length", 77) or 77), 512))


def _labels(tokenizer: Any, ids: list[int]) -> list[tuple[int, str]]:
    special = set(getattr(tokenizer, "all_special_ids", []))
    return [(i, tokenizer.decode([token]).strip()) for i, token in enumerate(ids) if token not in special]
