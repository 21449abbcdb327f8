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

__all__ = ["AttentionMapRecorder", "AttentionMapStore", "install_recorders", "prompt_tokens"]


class AttentionMapStore:
    """Sums of (queries × keys) attention maps per layer, of the batch element ``cond_index(batch)``."""

    def __init__(self, cond_index: Callable[[int], int] | None = None) -> None:
        self.cond_index = cond_index or (lambda batch: 0)
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
        if isinstance(installed, InterceptProcessor):  # joint attention: the image × text block
            installed.recorder = _joint_recorder(name, store, installed, baseline)
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


def prompt_tokens(tokenizer: Any, prompt: str, keys: int) -> list[tuple[int, str]]:
    """(key position, text) of the prompt's tokens as the text encoder saw them, special tokens left out.

    The prompt is tokenized as diffusers' pipelines do (padded/truncated to ``keys`` tokens), so position
    ``i`` is cross-attention key ``i``.
    """
    ids = tokenizer(prompt, padding="max_length", max_length=keys, truncation=True).input_ids
    special = set(getattr(tokenizer, "all_special_ids", []))
    return [(i, tokenizer.decode([token]).strip()) for i, token in enumerate(ids) if token not in special]
