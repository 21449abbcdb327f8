"""PLADIS attention (Eq. 15) on plain torch ops: one QKᵀ, the λ-mixed weights, one matmul with V.

Eq. 15 is linear in the attention weights, so At_dense + λ·(At_α − At_dense) is computed as ONE matmul of
M = (1−λ)·softmax(S) + λ·α-entmax(S / temperature) with V, where S = QKᵀ/√d is computed once. The
threshold of the α-entmax branch comes from the sort-free solver of :mod:`pladis.alpha_entmax`.
Long inputs are processed in tiles (groups of heads, or query ranges of one head) so that the per-row
passes run in cache and the extra memory stays bounded (about ``CHUNK_ELEMENTS`` scores), whatever the
sequence length; each tile's output is written in place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from .._checks import batch_shape
from ..alpha_entmax import entmax_weights

__all__ = ["attention", "mix", "mixed_weights", "same_logits", "scores_of", "working_dtype"]

# Scores per tile on CPU: 2**19 fp32 values (2 MiB) keep a tile's passes in L2 and its allocations out of
# fresh pages (docs/kernels.md). On GPU one tile is best: each tile costs the solver's host sync.
CHUNK_ELEMENTS = {"cpu": 1 << 19}
_DEFAULT_CHUNK = 1 << 26
_LOG2E = 1.0 / math.log(2.0)

Solve = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
# weights_fn(scores, bias, scale, alpha, temperature) -> (weights, rows still to be solved exactly or None)
WeightsFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype scores and weights are computed in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def same_logits(bias: torch.Tensor | None, temperature: float) -> bool:
    """Whether the sparse logits are the dense ones divided by T: (S + bias)/T for T ≤ 1 (a −10000 mask
    then stays a removal at any small T), S/T + bias for T > 1 (where dividing would weaken it)."""
    return bias is None or temperature <= 1.0


def scores_of(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """S = QKᵀ/√d in the working dtype, float32 from float16/bfloat16 inputs too (their products can
    exceed fp16's range); the 1/√d is applied to K, once, before the product."""
    work = working_dtype(query.dtype)
    return torch.matmul(query.to(work), _scaled_keys(key.to(work), query.shape[-1]).transpose(-2, -1))


def _keys_major_scores(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Sᵀ = K·Qᵀ/√d in float32, (…, Nk, Nq) contiguous."""
    work = working_dtype(query.dtype)
    return torch.matmul(_scaled_keys(key.to(work), query.shape[-1]), query.to(work).transpose(-2, -1)).contiguous()


def _scaled_keys(key: torch.Tensor, head_dim: int) -> torch.Tensor:
    return key * (1.0 / math.sqrt(head_dim)) if head_dim else key  # D = 0: S is 0 (an empty sum)


def mixed_weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float
) -> torch.Tensor:
    """M = (1−λ)·softmax(S + bias) + λ·α-entmax(sparse logits) in the scores' dtype (Eq. 15's weights;
    the sparse logits as :func:`same_logits` says).

    ``scores`` (float32 or float64) is overwritten. Rows whose bias is −inf everywhere get zeros. The threshold is
    solved to fp32 precision (:func:`pladis.alpha_entmax.solve_threshold`).
    """

    def solve(x: torch.Tensor, c: float, mean, exp_x) -> tuple[torch.Tensor, torch.Tensor, None]:
        return (*entmax_weights(x, c, alpha, exp_x=exp_x), None)  # exp_x: only given where it pays (mix)

    return mix(scores, bias, scale, alpha, temperature, solve)[0]


def _exact(scores, bias, scale, alpha, temperature) -> tuple[torch.Tensor, None]:
    return mixed_weights(scores, bias, scale, alpha, temperature), None


def mix(
    scores: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    solve: Solve,
    fused: bool = False,
    shared_logits: bool | None = None,
    zero_scale: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eq. 15's weights; ``solve(x, c, mean, exp_x) -> ([c·x − τ]₊^k, row sums, done)`` gives the sparse
    branch (``mean`` and ``exp_x`` = exp(x) may be None). Returns (weights, done).

    Eager (``fused=False``) overwrites ``scores`` and uses the fastest separate ops; ``fused=True``
    mutates nothing and is written for ``torch.compile`` to fuse into one kernel, where ``scale`` and
    ``temperature`` may be 0-dim tensors (one compiled kernel for every value): ``shared_logits``
    (:func:`same_logits`) and ``zero_scale`` (λ = 0) then say what their values would.
    """
    if shared_logits is None:
        shared_logits = same_logits(bias, temperature)
    if zero_scale is None:
        zero_scale = scale == 0.0
    dense_logits = scores if bias is None else scores + bias
    row_max = dense_logits.amax(-1, keepdim=True)
    dead = None
    if bias is not None:  # only a mask can remove every key of a row
        dead = torch.isneginf(row_max)
        row_max = row_max.masked_fill(dead, 0.0)
    if fused:
        x = dense_logits - row_max
        mean = dense_logits.mean(-1, keepdim=True) - row_max
    else:
        x, mean = dense_logits.sub_(row_max), None
    if dead is not None:
        x = x.masked_fill(dead, 0.0)  # a fully masked row is solved as a uniform one, zeroed below
        mean = None if mean is None else mean.masked_fill(dead, 0.0)
    if fused:
        exp_x = x.exp()  # softmax numerators (max x = 0); also the solver's start weights
        dense, dense_coef = exp_x, (1.0 - scale) / exp_x.sum(-1, keepdim=True)
    else:
        start_weights = not zero_scale and alpha > 1.5 and alpha != 2.0  # saves α > 1.5 a pass; not the rest
        if bias is None:
            # No masked logits: 2^(x·log2 e) clamped at 2^-126, where exp2 has no slow path (weights it
            # changes are ≤ 1e-38), is cheaper than softmax + the start weights' max and division.
            dense = x.mul(_LOG2E).clamp_min_(-126.0).exp2_()
            dense_coef, exp_x = (1.0 - scale) / dense.sum(-1, keepdim=True), (dense if start_weights else None)
        else:  # aten's softmax, unlike exp, has no slow path for masked (−inf, −10000) logits
            dense, dense_coef = torch.softmax(x, dim=-1), 1.0 - scale
            exp_x = dense / dense.amax(-1, keepdim=True) if start_weights else None  # = exp(x)
    done = None
    if zero_scale:
        weights = dense * dense_coef
    else:
        if shared_logits:
            x_sparse, c = x, 1.0 / temperature  # (S + b)/T, whose max is max(S + b)/T
        else:
            z = scores / temperature + bias
            z_max = z.amax(-1, keepdim=True).masked_fill(dead, 0.0)
            x_sparse, c, mean, exp_x = (z - z_max).masked_fill(dead, 0.0), 1.0, None, None
        if alpha == 1.0:
            sparse, sparse_coef = torch.softmax(x_sparse * c, dim=-1), scale
        else:
            sparse, total, done = solve(x_sparse, c * (alpha - 1.0), mean, exp_x)
            sparse_coef = scale / total
        if fused:
            weights = dense * dense_coef + sparse * sparse_coef
        elif isinstance(sparse_coef, float):
            weights = dense.mul_(dense_coef).add_(sparse, alpha=sparse_coef)
        else:
            weights = dense.mul_(dense_coef).addcmul_(sparse, sparse_coef)
    return (weights if dead is None else weights.masked_fill(dead, 0.0)), done


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    alpha: float,
    temperature: float,
    budget: int | None = None,
    weights_fn: WeightsFn = _exact,
    keys_major: bool = False,
    lse: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 15 over tiles of about ``budget`` scores (default ``CHUNK_ELEMENTS`` for the device).

    A tile is a group of heads (the last batch dim) when one head's Nq×Nk scores fit the budget, else a
    range of queries of one head; either way its output is a contiguous block written in place.
    ``weights_fn(scores, bias, scale, alpha, temperature) -> (weights, done)`` computes a tile's weights;
    rows whose ``done`` flag is False are recomputed exactly, all at once, at the end. With
    ``keys_major`` a tile's scores are computed as K·Qᵀ, (…, Nk, m), and ``weights_fn`` returns weights
    in that layout and no ``done`` flags (:func:`pladis.kernels.native.native_weights`). ``lse``, a
    float32 (…, Nq) tensor, is filled with the rows' log-sum-exps of the dense logits by a ``weights_fn``
    that takes an ``lse`` keyword (the native one).
    """
    batch = batch_shape(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    n_query, n_key = query.shape[-2], key.shape[-2]
    if budget is None:
        budget = CHUNK_ELEMENTS.get(query.device.type, _DEFAULT_CHUNK)
    if math.prod(batch) * n_query * n_key <= budget:  # one tile: the plain two matmuls
        scores = _keys_major_scores(query, key) if keys_major else scores_of(query, key)
        row_lse = None if lse is None else torch.empty(scores.shape[:-2] + (n_query,), device=scores.device)
        weights, done = weights_fn(scores, bias, scale, alpha, temperature, **_lse_kw(row_lse))
        if lse is not None:
            lse.copy_(row_lse.view(lse.shape))
        out = torch.matmul((weights.mT if keys_major else weights).to(value.dtype), value)
        flat_scores = scores.reshape(-1, n_query, n_key)
        pending = _unsolved(torch.arange(flat_scores.shape[0], device=out.device), 0, flat_scores, done)
        if pending is not None:
            _redo(out, [pending], value, bias, scale, alpha, temperature)
        return out
    out_batch, batch = batch, batch or torch.Size([1])
    work = working_dtype(query.dtype)
    q_all = query.to(work).expand(*batch, n_query, query.shape[-1])
    k_all = _scaled_keys(key.to(work), query.shape[-1]).expand(*batch, n_key, key.shape[-1])
    v_all = value.expand(*batch, n_key, value.shape[-1])
    b_all = None if bias is None else bias.expand(*batch, n_query, n_key)
    out = torch.empty(*batch, n_query, value.shape[-1], dtype=value.dtype, device=value.device)
    heads = batch[-1]
    group = min(heads, budget // (n_query * n_key))
    rows = n_query if group else max(1, budget // n_key)
    pending = []
    for lead in itertools.product(*map(range, batch[:-1])):
        base = _flat_index(lead, batch) * heads
        for h0 in range(0, heads, max(group, 1)):
            h1 = min(h0 + max(group, 1), heads)
            for q0 in range(0, n_query, rows):
                q1 = min(q0 + rows, n_query)
                tile = (*lead, slice(h0, h1))
                q_tile = q_all[tile][..., q0:q1, :]
                if keys_major:
                    scores = torch.matmul(k_all[tile], q_tile.transpose(-2, -1)).contiguous()
                else:
                    scores = torch.matmul(q_tile, k_all[tile].transpose(-2, -1))
                tile_bias = None if b_all is None else b_all[tile][..., q0:q1, :]
                tile_lse = None if lse is None else torch.empty(scores.shape[:-2] + (q1 - q0,), device=scores.device)
                weights, done = weights_fn(scores, tile_bias, scale, alpha, temperature, **_lse_kw(tile_lse))
                if lse is not None:
                    lse.view(*batch, n_query)[tile][..., q0:q1] = tile_lse
                weights = weights.transpose(-2, -1) if keys_major else weights
                torch.matmul(weights.to(value.dtype), v_all[tile], out=out[tile][..., q0:q1, :])
                unsolved = _unsolved(torch.arange(base + h0, base + h1, device=out.device), q0, scores, done)
                if unsolved is not None:
                    pending.append(unsolved)
    if pending:
        _redo(out, pending, value, bias, scale, alpha, temperature)
    return out.view(*out_batch, n_query, -1)


def _lse_kw(lse: torch.Tensor | None) -> dict:
    return {} if lse is None else {"lse": lse}


def _flat_index(lead: tuple[int, ...], batch: torch.Size) -> int:
    index = 0
    for i, size in zip(lead, batch[:-1], strict=True):
        index = index * size + i
    return index


def _unsolved(items: torch.Tensor, q0: int, scores: torch.Tensor, done: torch.Tensor | None):
    """(flat batch index, query index, score row) of a tile's rows whose ``done`` flag is False, or None.

    ``items`` are the flat batch indices of the tile's (…, m, Nk) ``scores``, whose first query is ``q0``.
    """
    if done is None or bool(done.all()):
        return None
    m, n_key = scores.shape[-2:]
    todo = (~done.reshape(-1)).nonzero().squeeze(1)
    return items[todo // m], q0 + todo % m, scores.reshape(-1, n_key).index_select(0, todo)


def _redo(out, pending, value, bias, scale, alpha, temperature) -> None:
    """Recompute exactly, in one batch, the output rows whose threshold a fixed-pass kernel left unsolved."""
    n_query, batch = out.shape[-2], out.shape[:-2]
    b_idx = torch.cat([p[0] for p in pending])
    q_idx = torch.cat([p[1] for p in pending])
    scores = torch.cat([p[2] for p in pending])
    row_bias = None
    if bias is not None:
        row_bias = bias.expand(*batch, n_query, scores.shape[-1]).reshape(-1, n_query, scores.shape[-1])[b_idx, q_idx]
    weights = mixed_weights(scores, row_bias, scale, alpha, temperature).to(value.dtype)
    values = value.expand(*batch, *value.shape[-2:]).reshape(-1, *value.shape[-2:])
    flat_out = out.view(-1, n_query, out.shape[-1])
    for item in torch.unique(b_idx).tolist():  # one small matmul per batch item (head) concerned
        sel = (b_idx == item).nonzero().squeeze(1)
        flat_out[item].index_copy_(0, q_idx[sel], torch.matmul(weights[sel], values[item]))
