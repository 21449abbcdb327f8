"""PLADIS for joint attention (one softmax over concatenated [text | image] tokens, MMDiT): the
mass-preserving sub-block rule.

For each image-query row with scores ``z``, ``dense = softmax(z)`` over all keys and
``m = Σ_{k ∈ text} dense[k]`` (the row's dense mass on the text keys)::

    w[text]  = m · ((1 − λ) · softmax(z_text) + λ · α-entmax(z_text / T))     (Eq. 15 on the text block,
    w[image] = dense[image]                                                     rescaled to its dense mass)

Text-query rows keep ``dense``; every row still sums to 1; λ = 0 is dense attention. The rule is linear
in the weights, so for image rows ``out = (1 − m) · SDPA(q_img, k_img, v_img) + m · M · V_text`` with ``M``
Eq. 15's mixed weights of the image × text block and ``m = sigmoid(lse_text − lse_image)`` from the two
blocks' row log-sum-exps; text rows are one SDPA call over all keys. So the dense work is exactly one SDPA's
worth of scores, on torch's fused kernel, plus a cross-attention-sized Eq. 15 call over the image × text
block on the project's fast back-ends. The full (N_img + N_txt)² weights are
never formed (:func:`joint_weights` forms them, for small inputs: maps and tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .attention import mask_to_bias
from .kernels import backends
from .kernels.eager import mixed_weights, scores_of

__all__ = ["joint_attention", "joint_block_weights", "joint_weights", "dense_with_lse"]


def joint_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    *,
    text: tuple[int, int],
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    """Joint attention with PLADIS on the image-query × text-key block (module docstring).

    ``query``/``key``/``value``: (B, H, N, D) over the same N joint tokens; ``text`` = [start, stop) of the
    text tokens (a prefix or a suffix); ``attn_mask``: SDPA's (bool True = attend, or additive), e.g.
    Qwen-Image's padded text mask joined to an all-ones image mask — masked text keys get weight 0 in both
    branches and in ``m``. ``scale`` λ, ``alpha`` α, ``temperature`` T as in :func:`pladis.pladis_attention`;
    ``backend`` runs the text-block correction. Scores, τ and ``m`` are float32 for fp16/bf16 inputs.
    """
    n = query.shape[-2]
    start, stop = text
    if key.shape[-2] != n or value.shape[-2] != n:
        raise ValueError(f"joint attention needs as many keys as queries; got {n} queries, {key.shape[-2]} keys")
    if not (0 <= start < stop <= n and (start == 0 or stop == n)):
        raise ValueError(f"text must be a prefix or suffix span [start, stop) of the {n} tokens; got {text!r}")
    if scale == 0.0 or stop - start == n:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
    bias = None if attn_mask is None else mask_to_bias(attn_mask, (*query.shape[:-1], n))
    rows, image, txt = slice(start, stop), (slice(stop, n) if start == 0 else slice(0, start)), slice(start, stop)
    out = query.new_empty(*torch.broadcast_shapes(query.shape[:-2], key.shape[:-2]), n, value.shape[-1])
    out[..., rows, :] = dense_with_lse(query[..., rows, :], key, value, _rows_cols(bias, rows, slice(0, n)))[0]
    # image rows: dense over the image keys, plus m × Eq. 15 over the text keys, m from the two log-sum-exps
    q_img = query[..., image, :]
    dense_img, lse_img = dense_with_lse(q_img, key[..., image, :], value[..., image, :], _rows_cols(bias, image, image))
    mixed, lse_txt = _text_block(q_img, key[..., txt, :], value[..., txt, :], _rows_cols(bias, image, txt),
                                 scale, alpha, temperature, backend)
    mass = torch.sigmoid(lse_txt - lse_img).unsqueeze(-1)  # = exp(lse_txt − lse_all)
    out[..., image, :] = (dense_img.float() * (1.0 - mass) + mixed * mass).to(out.dtype)
    return out


def _text_block(q_img, k_txt, v_txt, bias, scale, alpha, temperature, backend):
    """(Eq. 15 over the text keys in float32, the text block's row log-sum-exps)."""
    if q_img.dtype != torch.float32:  # fp16/bf16: the block's scores, τ and m in float32
        q_img, k_txt, v_txt = q_img.float(), k_txt.float(), v_txt.float()
    mixed, lse_txt = backends.attention_with_lse(q_img, k_txt, v_txt, bias, scale, alpha, temperature, backend)
    if lse_txt is None:  # a back-end that does not report them: one fused dense pass for them
        _, lse_txt = dense_with_lse(q_img, k_txt, v_txt, bias)
    if bias is not None:  # a row whose text keys are all masked: no text mass (and no NaN from the mix)
        mixed = mixed.masked_fill_(torch.isneginf(lse_txt).unsqueeze(-1), 0.0)
    return mixed, lse_txt


def _rows_cols(bias: torch.Tensor | None, rows: slice, cols: slice) -> torch.Tensor | None:
    if bias is None:
        return None
    bias = bias[..., cols]
    return bias if bias.shape[-2] == 1 else bias[..., rows, :]


def dense_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(SDPA output, float32 row log-sum-exps of the scaled scores) from one fused attention call where
    torch has one (CPU flash, CUDA memory-efficient), else from chunked scores."""
    mask = None if bias is None else bias.to(query.dtype)
    out = None
    if query.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, False, attn_mask=mask)
    elif query.device.type == "cuda":
        try:
            out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(query, key, value, mask, True)
            lse = lse[..., : query.shape[-2]]
        except RuntimeError:  # shapes or dtypes the kernel refuses: the generic path below
            out = None
    if out is None:
        return _generic_dense_with_lse(query, key, value, bias)
    lse = lse.float()
    if bias is not None:  # a row with every key masked has no mass (the fused kernels report lse 0)
        lse = lse.masked_fill(torch.isneginf(bias).all(-1), float("-inf"))
    return out, lse


def _generic_dense_with_lse(query, key, value, bias, rows_per_chunk: int = 1024):
    """Softmax attention and its log-sum-exps over chunks of queries (bounded memory, float32 scores)."""
    n = query.shape[-2]
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    out = query.new_empty(*batch, n, value.shape[-1])
    lse = torch.empty(*batch, n, device=query.device)
    k_scaled = key.float() * (1.0 / math.sqrt(query.shape[-1]))
    for r0 in range(0, n, rows_per_chunk):
        rows = slice(r0, min(r0 + rows_per_chunk, n))
        scores = torch.matmul(query[..., rows, :].float(), k_scaled.transpose(-2, -1))
        if bias is not None:
            scores = scores + (bias if bias.shape[-2] == 1 else bias[..., rows, :])
        lse[..., rows] = torch.logsumexp(scores, -1)
        out[..., rows, :] = torch.matmul(torch.softmax(scores, -1), value.float()).to(out.dtype)
    return out, lse


def joint_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    *,
    text: tuple[int, int],
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The full float32 (…, N, N) weights of the joint rule (module docstring), formed explicitly: for
    attention maps and checks on small inputs (``joint_attention`` never forms them)."""
    n = query.shape[-2]
    start, stop = text
    scores = scores_of(query, key)
    bias = None if attn_mask is None else mask_to_bias(attn_mask, scores.shape)
    logits = scores if bias is None else scores + bias
    weights = torch.softmax(logits, -1)
    image = slice(stop, n) if start == 0 else slice(0, start)
    block = scores[..., image, start:stop].clone()
    block_bias = _rows_cols(None if bias is None else bias.expand(scores.shape), image, slice(start, stop))
    mixed = mixed_weights(block, block_bias, scale, alpha, temperature)
    mass = weights[..., image, start:stop].sum(-1, keepdim=True)
    weights[..., image, start:stop] = mass * mixed
    return weights


def joint_block_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    *,
    text: tuple[int, int],
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The float32 image-query × text-key block (…, N_img, N_txt) of the joint rule's weights, without
    forming the rest (attention maps of joint models; λ = 0 gives the dense block)."""
    n = query.shape[-2]
    start, stop = text
    image = slice(stop, n) if start == 0 else slice(0, start)
    bias = None if attn_mask is None else mask_to_bias(attn_mask, (*query.shape[:-1], n))
    _, lse_all = dense_with_lse(query, key, value, bias)
    block_bias = _rows_cols(bias, image, slice(start, stop))
    scores = scores_of(query[..., image, :], key[..., start:stop, :])
    logits = scores if block_bias is None else scores + block_bias
    dense_block = torch.exp(logits - lse_all[..., image].unsqueeze(-1))
    if scale == 0.0:
        return dense_block
    mass = dense_block.sum(-1, keepdim=True)
    return mass * mixed_weights(scores, block_bias, scale, alpha, temperature)
