"""The Triton kernel on CPU under TRITON_INTERPRET=1, against the literal Eq. 15 oracle.

Not collected by default (the interpreter must be chosen before triton is imported): test_backends.py
runs this file in a fresh process with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import os
import sys

import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("run with TRITON_INTERPRET=1 (see test_backends.py)", allow_module_level=True)
pytest.importorskip("triton")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_backends import ALPHAS, _bias, _hard_scores_inputs, _literal, _masks, _qkv  # noqa: E402

import pladis  # noqa: E402
from pladis.kernels import backends  # noqa: E402


@pytest.fixture
def interpreted():
    from pladis.kernels import triton_kernel

    assert triton_kernel._INTERPRET
    return triton_kernel


@pytest.mark.parametrize("alpha", ALPHAS)
def test_triton_kernel_matches_the_oracle_on_hard_cases(interpreted, alpha):
    q, k, v = _hard_scores_inputs()
    assert backends.choose("triton", q, k, v, None, alpha) == "triton"
    for scale in (2.0, -1.0):
        out = pladis.pladis_attention(q, k, v, scale=scale, alpha=alpha, backend="triton")
        torch.testing.assert_close(out.double(), _literal(q, k, v, scale, alpha), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["bool", "sana"])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_triton_kernel_masks_and_temperature(interpreted, kind, temperature):
    q, k, v = _hard_scores_inputs()
    mask = _masks()[kind]
    out = pladis.pladis_attention(q, k, v, alpha=1.5, temperature=temperature, attn_mask=mask, backend="triton")
    expected = _literal(q, k, v, 2.0, 1.5, temperature, _bias(mask))
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-5)
    if kind == "bool":
        assert torch.equal(out[0, 1, 3], torch.zeros(8))


# bfloat16 is left to the GPU check (tools/gpu_check.sh): the interpreter's tl.dot mishandles it (numpy
# has no bfloat16; a 16×16 bf16 dot comes out ~1e10 off in triton 3.8), whatever the kernel.
@pytest.mark.parametrize("dtype", [torch.float16])
@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.25])
def test_triton_kernel_half_precision(interpreted, dtype, alpha):
    q, k, v = _qkv(b=1, h=2, nq=33, nk=77, d=40, seed=6, spread=2.0, dtype=dtype)
    q = q.transpose(1, 2).contiguous().transpose(1, 2)  # strided, as the processor passes it
    out = pladis.pladis_attention(q, k, v, alpha=alpha, backend="triton")
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = pladis.pladis_attention(q.float(), k.float(), v.float(), alpha=alpha, backend="eager")
    tol = 2e-2
    torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)


def test_triton_kernel_shapes_and_broadcast(interpreted):
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(2, 5, 160, generator=gen)  # one batch dim, head dim 160 (SD1.5's deepest level)
    k = torch.randn(1, 9, 160, generator=gen)  # broadcast over the batch
    v = torch.randn(1, 9, 24, generator=gen)
    out = pladis.pladis_attention(q, k, v, alpha=1.75, backend="triton")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, 1.75), atol=2e-5, rtol=1e-5)
    two_d = pladis.pladis_attention(q[0], k[0], v[0], alpha=2.0, backend="triton")
    torch.testing.assert_close(two_d.double(), _literal(q[0], k[0], v[0], 2.0, 2.0), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("n_key", [5, 16, 17, 64, 65, 80, 128, 200, 256])
def test_triton_kernel_key_tiles(interpreted, n_key):
    """Every split of the keys into a power-of-two tile and a padded tail gives Eq. 15, with and
    without a mask (masked keys in both tiles, one row with every key masked)."""
    expected = {5: (16, 0), 16: (16, 0), 17: (16, 16), 64: (64, 0), 65: (64, 16), 80: (64, 16),
                128: (128, 0), 200: (128, 128), 256: (256, 0)}
    assert interpreted.key_tiles(n_key) == expected[n_key]
    q, k, v = _qkv(b=1, h=2, nq=20, nk=n_key, d=16, dv=8, seed=n_key, spread=2.0)
    for alpha in (1.5, 1.75):
        out = pladis.pladis_attention(q, k, v, alpha=alpha, backend="triton")
        torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, alpha), atol=2e-5, rtol=1e-5)
    keep = torch.rand(1, 2, 20, n_key, generator=torch.Generator().manual_seed(1)) > 0.3
    keep[..., 0] = True
    keep[0, 1, 4] = False
    out = pladis.pladis_attention(q, k, v, alpha=2.0, attn_mask=keep, backend="triton")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, 2.0, bias=_bias(keep)), atol=2e-5, rtol=1e-5)
    assert torch.equal(out[0, 1, 4], torch.zeros(8))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_triton_kernel_finishes_unconverged_rows(interpreted, monkeypatch, alpha):
    """With a single fixed pass most rows are unsolved: the straggler loop must still end exactly."""
    monkeypatch.setattr(interpreted, "PASSES", {alpha: 1})
    assert interpreted.passes_for(alpha) == 1
    q, k, v = _hard_scores_inputs()
    out = pladis.pladis_attention(q, k, v, alpha=alpha, backend="triton")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, alpha), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_triton_launch_plans_are_reused_for_new_data(interpreted, masked):
    """A second call with the same layout takes the cached plan (its own output, the new data's result)."""
    from pladis.kernels import triton_launch

    triton_launch._plans.clear()
    mask = torch.zeros(1, 1, 1, 77, dtype=torch.bool) if masked else None
    if masked:
        mask[..., :50] = True
    for seed in (11, 12):
        q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in _qkv(b=1, h=2, nq=33, nk=77, d=40, seed=seed))
        out = pladis.pladis_attention(q, k, v, alpha=1.25, attn_mask=mask, backend="triton")
        expected = _literal(q, k, v, 2.0, 1.25, 1.0, None if mask is None else _bias(mask))
        torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-5)
        assert out.transpose(1, 2).is_contiguous()  # (B, Nq, H, Dv) memory, as SDPA writes it
    assert len(triton_launch._plans) == 1


def test_triton_declines_a_mask_on_another_device(interpreted):
    """A bias the kernel cannot read (another device) falls back with a warning, never reaches a launch."""
    q, k, v = _qkv(b=1, h=2, nq=8, nk=77, d=16)
    bias = torch.zeros(1, 1, 1, 77, device="meta")
    with pytest.warns(RuntimeWarning, match="the mask is on meta"):
        assert backends.choose("triton", q, k, v, bias, 1.5) != "triton"


def test_triton_kernel_takes_a_1d_key_mask(interpreted):
    q, k, v = _qkv(b=1, h=2, nq=16, nk=24)
    keep = torch.ones(24, dtype=torch.bool)
    keep[5::3] = False
    out = pladis.pladis_attention(q, k, v, attn_mask=keep, backend="triton")
    expected = pladis.pladis_attention(q, k, v, attn_mask=keep, backend="eager")
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("temperature", [1e-3, 1.0])
def test_triton_kernel_nan_rows_and_minus_10000_masks(interpreted, temperature):
    q, k, v = _qkv(b=1, h=1, nq=16, nk=24, spread=10.0)
    q[0, 0, 2] = float("nan")
    bias = torch.zeros(24)
    bias[::2] = -10000.0
    out = pladis.pladis_attention(q, k, v, temperature=temperature, attn_mask=bias, backend="triton")
    expected = pladis.pladis_attention(q, k, v, temperature=temperature, attn_mask=bias, backend="eager")
    assert torch.isnan(out[0, 0, 2]).all() and torch.isnan(expected[0, 0, 2]).all()
    rows = torch.arange(16) != 2
    torch.testing.assert_close(out[0, 0, rows], expected[0, 0, rows], atol=5e-5, rtol=1e-5)
