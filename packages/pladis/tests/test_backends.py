"""The back-ends of pladis_attention (eager tiles, torch.compile, Triton) against the literal Eq. 15 oracle.

The oracle is the `entmax` package (sort-based entmax15/sparsemax, bisection otherwise) in float64, two
separate attentions as the paper writes Eq. 15. The Triton kernel runs on CPU under TRITON_INTERPRET=1.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import entmax as oracle
import pytest
import torch

import pladis
from pladis.attention import pladis_weights
from pladis.kernels import backends, compiled, eager

ALPHAS = [1.25, 1.5, 1.75, 2.0]


def _literal(q, k, v, scale, alpha, temperature=1.0, bias=None):
    """Eq. 15 as two attentions, in float64, with the oracle's α-entmax."""
    q, k, v = (t.double() for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    b = 0.0 if bias is None else bias.double()
    dense_logits, sparse_logits = s + b, s / temperature + b
    dead = torch.isneginf(dense_logits.amax(-1, keepdim=True))
    dense = torch.softmax(dense_logits.masked_fill(dead, 0.0), -1)
    z = sparse_logits.masked_fill(dead, 0.0)
    if alpha == 1.5:
        sparse = oracle.entmax15(z, dim=-1)
    elif alpha == 2.0:
        sparse = oracle.sparsemax(z, dim=-1)
    else:
        sparse = oracle.entmax_bisect(z, alpha, n_iter=100)
    out = dense @ v + scale * (sparse @ v - dense @ v)
    return out.masked_fill(dead, 0.0)


def _qkv(b=2, h=3, nq=40, nk=77, d=16, dv=None, seed=0, spread=1.0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=gen) * spread
    k = torch.randn(b, h, nk, d, generator=gen)
    v = torch.randn(b, h, nk, dv or d, generator=gen)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _hard_scores_inputs():
    """q, k, v whose scores hit the solver's hard cases: ties, near-uniform rows, huge spreads."""
    q, k, v = _qkv(b=1, h=4, nq=24, nk=77, d=8, seed=3)
    q[0, 0] *= 1e-4  # near-uniform rows
    q[0, 1] *= 300.0  # huge spreads
    k[0, 2, 40:] = k[0, 2, :37]  # duplicated keys: tied scores
    q[0, 3] = 0.0  # all scores equal
    return q, k, v


def _masks(nq=24, nk=77):
    keep = torch.ones(1, 4, nq, nk, dtype=torch.bool)
    keep[..., 50:] = False
    keep[0, 1, 3] = False  # a fully masked row
    sana = torch.zeros(1, 1, 1, nk)
    sana[..., 60:] = -10000.0
    return {"bool": keep, "sana": sana}


def test_unknown_backend_raises():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="backend must be one of"):
        pladis.pladis_attention(q, k, v, backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        pladis_weights(q, k, backend="fast")


@pytest.mark.parametrize("alpha", [1.0, *ALPHAS])
@pytest.mark.parametrize("scale", [0.0, 2.0])
def test_eager_tiles_match_the_oracle(monkeypatch, alpha, scale):
    monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", 700)  # tiles of single heads and of query ranges
    q, k, v = _qkv(seed=1)
    out = pladis.pladis_attention(q, k, v, scale=scale, alpha=alpha, backend="eager")
    if alpha == 1.0:
        expected = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(out.double(), _literal(q, k, v, scale, alpha), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("budget", [77 * 40 * 6, 500, 10])
def test_tiling_is_invisible(monkeypatch, budget):
    q, k, v = _qkv(b=2, h=3, seed=2)
    q2 = q.transpose(1, 2).contiguous().transpose(1, 2)  # the processor's (B, N, H, D) layout
    bias = torch.zeros(2, 1, 40, 77).masked_fill(torch.rand(2, 1, 40, 77) < 0.3, float("-inf"))
    bias[0, 0, 5] = float("-inf")
    whole = pladis.pladis_attention(q, k, v, attn_mask=bias, temperature=0.7, backend="eager")
    monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", budget)
    tiled = pladis.pladis_attention(q2, k, v, attn_mask=bias, temperature=0.7, backend="eager")
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    assert torch.equal(tiled[0, :, 5], torch.zeros(3, 16))
    for args in [(q[0, 0], k[0, 0], v[0, 0]), (q[0], k[0, :1], v[0, :1])]:  # no batch dim; broadcast keys
        monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", 10**9)
        ref = pladis.pladis_attention(*args, backend="eager")
        monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", budget)
        torch.testing.assert_close(pladis.pladis_attention(*args, backend="eager"), ref, atol=1e-5, rtol=1e-5)


def test_auto_picks_by_device_size_and_grad(monkeypatch):
    q, k, v = _qkv()
    monkeypatch.setattr(backends, "native_fits", lambda *a: "no C compiler")  # native: see test_native.py
    assert backends.choose("auto", q, k, v) == "eager"  # small: compiling would not pay
    monkeypatch.setattr(backends, "AUTO_COMPILE_MIN_SCORES", 10)
    expected = "compile" if compiled.usable(q.device) else "eager"
    assert backends.choose("auto", q, k, v) == expected
    q.requires_grad_(True)
    assert backends.choose("auto", q, k, v) == "eager"  # fused back-ends are inference-only
    assert backends.choose("eager", q, k, v) == "eager"


def test_triton_falls_back_when_missing(monkeypatch):
    q, k, v = _qkv()
    monkeypatch.setattr(backends, "triton_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="triton is not installed"):
        assert backends.choose("triton", q, k, v) == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pladis.pladis_attention(q, k, v, backend="triton")
    torch.testing.assert_close(out, pladis.pladis_attention(q, k, v, backend="eager"))


needs_compile = pytest.mark.skipif(not compiled.usable(torch.device("cpu")), reason="torch.compile needs a C++ compiler")


@needs_compile
@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.75])
def test_compile_matches_the_oracle_on_hard_cases(monkeypatch, alpha):
    monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", 4 * 24 * 77 // 2)  # two tiles
    q, k, v = _hard_scores_inputs()
    out = pladis.pladis_attention(q, k, v, scale=2.0, alpha=alpha, backend="compile")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, alpha), atol=2e-5, rtol=1e-5)
    w = pladis_weights(q, k, scale=2.0, alpha=alpha, backend="compile")
    torch.testing.assert_close(w, pladis_weights(q, k, scale=2.0, alpha=alpha, backend="eager"), atol=2e-6, rtol=0)


@needs_compile
def test_compile_redoes_unfinished_rows_exactly(monkeypatch):
    monkeypatch.setitem(compiled.COMPILED_PASSES, 1.5, 1)  # one fused pass: most rows left to the redo
    monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", 3 * 40 * 77)
    bias = _masks(40)["bool"][:, :3]
    q, k, v = _qkv(b=1, h=3, seed=5)
    out = pladis.pladis_attention(q, k, v, alpha=1.5, attn_mask=bias, backend="compile")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, 1.5, bias=_bias(bias)), atol=2e-5, rtol=1e-5)
    assert torch.equal(out[0, 1, 3], torch.zeros(16))


def _bias(mask: torch.Tensor) -> torch.Tensor:
    return torch.zeros(mask.shape).masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else mask


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_kernel_under_the_interpreter():
    """tests/triton_cases.py in a fresh process: TRITON_INTERPRET=1 must be set before triton is imported."""
    cases = Path(__file__).with_name("triton_cases.py")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cases)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
