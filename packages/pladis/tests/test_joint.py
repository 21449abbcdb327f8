"""The joint-attention rule (pladis.joint) against the formula computed by hand in float64."""

from __future__ import annotations

import math

import entmax as oracle
import pytest
import torch
import torch.nn.functional as F

from pladis.joint import joint_attention, joint_weights
from pladis.kernels.eager import scores_of

N_TXT, N_IMG = 9, 23


def _qkv(b=2, h=3, n=N_TXT + N_IMG, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen) * 1.5 for _ in range(3)]


def _spans(order: str, n_txt=N_TXT, n=N_TXT + N_IMG):
    if order == "text_first":
        return (0, n_txt), slice(n_txt, n)
    return (n - n_txt, n), slice(0, n - n_txt)


def _by_hand(q, k, text, scale, alpha, temperature=1.0, keep=None):
    """The rule in float64: w[text] = m·((1−λ)softmax(z_t) + λ·entmax(z_t/T)), w[image] = dense[image]
    for image rows; text rows dense. ``keep``: (B, N) bool of the keys that count."""
    q, k = q.double(), k.double()
    z = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if keep is not None:
        z = z.masked_fill(~keep[:, None, None, :], float("-inf"))
    dense = torch.softmax(z, -1)
    weights = dense.clone()
    start, stop = text
    n = z.shape[-1]
    image = slice(stop, n) if start == 0 else slice(0, start)
    z_t = z[..., image, start:stop]
    m = dense[..., image, start:stop].sum(-1, keepdim=True)
    sparse = oracle.entmax_bisect(z_t / temperature, alpha, dim=-1, n_iter=200)
    weights[..., image, start:stop] = m * ((1 - scale) * torch.softmax(z_t, -1) + scale * sparse)
    return weights


@pytest.mark.parametrize("order", ["text_first", "image_first"])
@pytest.mark.parametrize("alpha,scale,temperature", [(1.5, 2.0, 1.0), (2.0, 1.0, 1.0), (1.25, 3.0, 0.5)])
def test_weights_follow_the_rule(order, alpha, scale, temperature):
    q, k, _ = _qkv()
    text, image = _spans(order)
    w = joint_weights(q, k, text=text, scale=scale, alpha=alpha, temperature=temperature)
    dense = torch.softmax(scores_of(q, k), -1)  # the same float32 scores: the untouched parts are exact
    ref = _by_hand(q, k, text, scale, alpha, temperature)
    assert torch.allclose(w.double().sum(-1), torch.ones(()).double(), atol=2e-6)
    text_rows = slice(*text)
    assert torch.equal(w[..., text_rows, :], dense[..., text_rows, :])
    assert torch.equal(w[..., image, image], dense[..., image, image])
    assert torch.allclose(w.double(), ref, atol=2e-6, rtol=0)


@pytest.mark.parametrize("order", ["text_first", "image_first"])
@pytest.mark.parametrize("backend", ["eager", "native"])
def test_attention_equals_the_float64_weights_times_v(order, backend):
    q, k, v = _qkv(seed=1)
    text, _ = _spans(order)
    out = joint_attention(q, k, v, text=text, scale=2.0, alpha=1.5, backend=backend)
    ref = _by_hand(q, k, text, 2.0, 1.5) @ v.double()
    assert torch.allclose(out.double(), ref, atol=3e-6, rtol=0)


@pytest.mark.parametrize("order", ["text_first", "image_first"])
def test_text_query_rows_are_dense(order):
    """(Exactly so in the weights, above; the output's text rows come from an SDPA call over those rows
    alone, equal to the full call's up to fp32 rounding.)"""
    q, k, v = _qkv(seed=2)
    text, _ = _spans(order)
    out = joint_attention(q, k, v, text=text, scale=2.0)
    dense = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out[..., slice(*text), :], dense[..., slice(*text), :], atol=1e-6, rtol=0)
    assert not torch.allclose(out, dense, atol=1e-4)


def test_scale_zero_is_sdpa_bit_for_bit():
    q, k, v = _qkv(seed=3)
    assert torch.equal(joint_attention(q, k, v, text=(0, N_TXT), scale=0.0), F.scaled_dot_product_attention(q, k, v))
    w = joint_weights(q, k, text=(0, N_TXT), scale=0.0)
    assert torch.allclose(w, torch.softmax(scores_of(q, k), -1), atol=1e-6, rtol=0)


def test_masked_text_keys_get_zero_in_both_branches_and_in_the_mass():
    q, k, v = _qkv(seed=4)
    keep = torch.ones(2, N_TXT + N_IMG, dtype=torch.bool)
    keep[0, 5:N_TXT] = False  # sample 0: padded prompt
    keep[1, 7:N_TXT] = False
    mask = keep[:, None, None, :]
    w = joint_weights(q, k, mask, text=(0, N_TXT), scale=2.0, alpha=1.5)
    assert torch.equal(w[0, ..., 5:N_TXT], torch.zeros_like(w[0, ..., 5:N_TXT]))
    assert torch.equal(w[1, ..., 7:N_TXT], torch.zeros_like(w[1, ..., 7:N_TXT]))
    ref = _by_hand(q, k, (0, N_TXT), 2.0, 1.5, keep=keep)
    assert torch.allclose(w.double(), ref, atol=2e-6, rtol=0)
    out = joint_attention(q, k, v, mask, text=(0, N_TXT), scale=2.0, alpha=1.5)
    assert torch.allclose(out.double(), ref @ v.double(), atol=3e-6, rtol=0)
    # an additive mask (−inf) is the same mask
    bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    assert torch.allclose(joint_attention(q, k, v, bias, text=(0, N_TXT), scale=2.0), out, atol=1e-6, rtol=0)


def test_a_fully_masked_text_gets_no_correction():
    q, k, v = _qkv(seed=5)
    keep = torch.ones(2, N_TXT + N_IMG, dtype=torch.bool)
    keep[:, :N_TXT] = False
    mask = keep[:, None, None, :]
    out = joint_attention(q, k, v, mask, text=(0, N_TXT), scale=2.0)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(out[..., N_TXT:, :], dense[..., N_TXT:, :], atol=1e-6, rtol=0)


def test_long_text_blocks_beyond_the_register_kernel():
    """512 text keys (FLUX's prompt length; the Triton kernel holds at most 256) on the native CPU path."""
    q, k, v = _qkv(b=1, h=2, n=512 + 64, d=16, seed=6)
    out = joint_attention(q, k, v, text=(0, 512), scale=2.0, backend="native")
    ref = _by_hand(q, k, (0, 512), 2.0, 1.5) @ v.double()
    assert torch.allclose(out.double(), ref, atol=3e-5, rtol=0)  # 576-key fp32 sums
    assert not torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    q, k, v = _qkv(seed=7)
    out = joint_attention(q.to(dtype), k.to(dtype), v.to(dtype), text=(0, N_TXT), scale=2.0)
    assert out.dtype == dtype and bool(out.isfinite().all())
    ref = _by_hand(q.to(dtype).float(), k.to(dtype).float(), (0, N_TXT), 2.0, 1.5) @ v.to(dtype).double()
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    assert torch.allclose(out.double(), ref, atol=tol, rtol=0)


def test_bad_spans_are_refused():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="prefix or suffix"):
        joint_attention(q, k, v, text=(3, 8))
    with pytest.raises(ValueError, match="as many keys as queries"):
        joint_attention(q, k[..., :5, :], v[..., :5, :], text=(0, 3))


def test_the_native_path_takes_the_text_log_sum_exps_from_its_kernel(monkeypatch):
    """On the native kernel the text block's log-sum-exps come from the kernel's softmax pass: two fused
    dense calls (text rows, image block) instead of three, and the result of the by-hand rule."""
    import pladis.joint as joint

    calls = []
    original = joint.dense_with_lse
    monkeypatch.setattr(joint, "dense_with_lse", lambda *a: calls.append(a[1].shape[-2]) or original(*a))
    q, k, v = _qkv(seed=8)
    out = joint_attention(q, k, v, text=(0, N_TXT), scale=2.0, backend="native")
    assert calls == [N_TXT + N_IMG, N_IMG]
    ref = _by_hand(q, k, (0, N_TXT), 2.0, 1.5) @ v.double()
    assert torch.allclose(out.double(), ref, atol=1e-5, rtol=0)
    calls.clear()
    joint_attention(q, k, v, text=(0, N_TXT), scale=2.0, backend="eager")
    assert calls == [N_TXT + N_IMG, N_IMG, N_TXT]
