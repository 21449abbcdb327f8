"""Offline tiny tokenizers (CLIP-style byte-level BPE, Gemma-style BPE, T5-style Unigram) for random-weight
pipelines.

Nothing is downloaded: the vocabularies and merges are learned in memory, deterministically, from a
short word list, so that every listed word becomes a single token and any other text still maps to
real ids (CLIP: byte-level symbols; Gemma: byte-fallback tokens ``<0x..>``).  The vocabulary size of
a tokenizer ``tok`` is ``len(tok)``: use it as the text encoder's ``vocab_size``.

Both tokenizers are ordinary ``transformers`` classes and survive ``save_pretrained`` /
``from_pretrained`` (alone or as pipeline components).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

# fmt: off
DEFAULT_WORDS: tuple[str, ...] = (
    "a", "an", "the", "and", "of", "with", "on", "in", "to", "at", "is", "by", "its",
    "left", "right", "above", "below", "under", "over", "between", "next", "behind", "front",
    "near", "top", "bottom", "inside",
    "one", "two", "three", "four",
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "black", "white", "gray", "brown",
    "circle", "square", "triangle", "star", "cube", "sphere", "cone", "heart",
    "photo", "picture", "painting", "image", "drawing", "art", "style", "portrait", "landscape",
    "cat", "dog", "bird", "horse", "car", "tree", "house", "flower", "apple", "banana", "ball",
    "cup", "book", "chair", "table", "man", "woman", "person", "boat", "clock", "sky", "sun",
    "moon", "mountain", "city", "street", "beach", "forest", "water", "field", "room",
    "big", "small", "large", "tiny", "tall", "bright", "dark", "beautiful", "high", "quality",
    "detailed", "realistic", "cute", "old", "sitting", "standing", "wearing", "holding",
)
# fmt: on

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
GEMMA_SPECIALS: tuple[str, ...] = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table, in CLIP's vocabulary order (256 printable symbols)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _learn_merges(words: Iterable[tuple[str, ...]]) -> list[tuple[str, str]]:
    """Deterministic BPE training: merge the most frequent pair (ties: smallest pair) until every word is one
    symbol.  Encoding a training word with the learned merges then yields a single token."""
    seqs = [list(w) for w in dict.fromkeys(words) if len(w) > 1]
    merges: list[tuple[str, str]] = []
    while seqs:
        counts: dict[tuple[str, str], int] = {}
        for s in seqs:
            for pair in zip(s, s[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        a, b = min(counts, key=lambda p: (-counts[p], p))
        merges.append((a, b))
        nxt = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            if len(out) > 1:
                nxt.append(out)
        seqs = nxt
    return merges


def _extend(vocab: dict[str, int], tokens: Iterable[str]) -> None:
    for t in tokens:
        if t not in vocab:
            vocab[t] = len(vocab)


def _words(vocab_words: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(DEFAULT_WORDS if vocab_words is None else vocab_words)


@lru_cache(maxsize=8)
def _clip_vocab(words: tuple[str, ...]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    bare = CLIPTokenizer(
        vocab={s: i for i, s in enumerate(symbols)} | {CLIP_BOS: 256, CLIP_EOS: 257}, merges=[]
    )
    norm, pre = bare.backend_tokenizer.normalizer, bare.backend_tokenizer.pre_tokenizer
    pieces = [p for w in words for p, _ in pre.pre_tokenize_str(norm.normalize_str(w))]
    merges = _learn_merges(tuple(p[:-1]) + (p[-1] + "</w>",) for p in pieces if p)
    vocab: dict[str, int] = {}
    _extend(vocab, symbols)
    _extend(vocab, (s + "</w>" for s in symbols))
    _extend(vocab, (a + b for a, b in merges))
    _extend(vocab, (CLIP_BOS, CLIP_EOS))  # specials last, as in the real CLIP vocabulary
    return vocab, merges


def tiny_clip_tokenizer(
    vocab_words: Sequence[str] | None = None,
    model_max_length: int = 77,
    *,
    pad_token: str = CLIP_EOS,
) -> Any:
    """A ``transformers.CLIPTokenizer`` (byte-level BPE, lower-casing) built offline.

    Vocabulary layout as in CLIP: 256 byte symbols, the same with ``</w>``, merged tokens (every word of
    ``vocab_words`` -- default :data:`DEFAULT_WORDS` -- is one ``word</w>`` token), then ``<|startoftext|>``
    and ``<|endoftext|>`` (the two highest ids).  ``pad_token`` defaults to eos as in SD 1.x; SDXL's second
    tokenizer uses ``"!"``.  ``len(tokenizer)`` is the vocabulary size (about 900 with the default words).
    """
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab(_words(vocab_words))
    return CLIPTokenizer(
        vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=model_max_length
    )


@lru_cache(maxsize=8)
def _gemma_vocab(words: tuple[str, ...]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    alphabet = ["▁"] + list(string.ascii_letters + string.digits + string.punctuation)
    training = []
    for w in words:
        w = w.replace(" ", "▁")
        training += [tuple(w), tuple("▁" + w)]
    merges = _learn_merges(training)
    vocab: dict[str, int] = {}
    _extend(vocab, GEMMA_SPECIALS)
    _extend(vocab, (f"<0x{b:02X}>" for b in range(256)))
    _extend(vocab, alphabet)
    _extend(vocab, (a + b for a, b in merges))
    return vocab, merges


def tiny_gemma_tokenizer(vocab_words: Sequence[str] | None = None, model_max_length: int = 8192) -> Any:
    """A ``transformers.GemmaTokenizer`` (tokenizers-backed BPE with byte fallback) built offline.

    Gemma conventions: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4, then the 256
    ``<0xNN>`` byte-fallback tokens, ASCII characters and ``▁``-prefixed whole words for ``vocab_words``
    (default :data:`DEFAULT_WORDS`).  ``<bos>`` is prepended (``add_special_tokens=True``); padding side is
    left like Gemma's (SanaPipeline switches it to right).  ``len(tokenizer)`` is the vocabulary size.
    """
    from transformers import GemmaTokenizer

    vocab, merges = _gemma_vocab(_words(vocab_words))
    return GemmaTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=model_max_length,
    )


T5_SPECIALS: tuple[str, ...] = ("<pad>", "</s>", "<unk>")


def tiny_t5_tokenizer(vocab_words: Sequence[str] | None = None, model_max_length: int = 512) -> Any:
    """A ``transformers.T5Tokenizer`` (tokenizers-backed Unigram, ``▁`` word prefix) built offline.

    T5 conventions: ``<pad>``=0, ``</s>``=1 (appended, ``add_special_tokens=True``), ``<unk>``=2, no
    ``<extra_id_*>`` sentinels; then ``▁``, the ASCII characters and a ``▁word`` piece per word of
    ``vocab_words`` (default :data:`DEFAULT_WORDS`), scored so that every listed word is one token and other
    text falls back to characters (``<unk>`` outside ASCII). ``len(tokenizer)`` is the vocabulary size.
    """
    from transformers import T5Tokenizer

    pieces = [(token, 0.0) for token in T5_SPECIALS] + [("▁", -2.0)]
    pieces += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("▁" + word.replace(" ", "▁"), -1.0) for word in dict.fromkeys(_words(vocab_words))]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
