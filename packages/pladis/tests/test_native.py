"""The native CPU kernel (pladis/kernels/native_kernel.c) against the float64 Eq. 15 oracle (the `entmax`
package) and the eager path; its build, cache and fallbacks."""

from __future__ import annotations

import os
import sys
import warnings

import entmax as oracle
import pytest
import torch

import pladis
from pladis.attention import pladis_weights
from pladis.kernels import backends, eager, native

sys.path.insert(0, os.path.dirname(__file__))
from test_backends import _bias, _hard_scores_inputs, _literal, _masks, _qkv  # noqa: E402  (the oracle)

ALPHAS = [1.1, 1.2, 1.25, 1.33, 1.5, 1.6, 1.75, 2.0]  # quarters, thirds and exp2/log2 powers in the kernel
HAS_COMPILER = native._compiler() is not None
needs_kernel = pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler on this machine")


def _native(scores, bias, scale, alpha, temperature):
    """native_weights on queries-major scores, returned queries-major."""
    weights, done = native.native_weights(scores.transpose(-2, -1).contiguous(), bias, scale, alpha, temperature)
    assert done is None
    return weights.transpose(-2, -1)


def _scores(seed=0, shape=(2, 3, 37, 77), spread=3.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * spread


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """An empty kernel cache in tmp_path; the process-wide library is restored afterwards."""
    monkeypatch.setenv("PLADIS_CACHE_DIR", str(tmp_path))
    native._library.cache_clear()
    native._failure.clear()
    yield tmp_path
    monkeypatch.undo()
    native._library.cache_clear()
    native._failure.clear()


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler on this machine")
def test_the_kernel_builds_wherever_a_compiler_exists():
    assert native.usable(torch.device("cpu")), native.failure()
    assert native.library_path().is_file()


@needs_kernel
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("temperature", "mask"), [(1.0, None), (0.7, None), (1.0, "bool"), (0.7, "bool"), (0.7, "sana")])
def test_weights_match_eager(alpha, temperature, mask):
    scores = _scores(seed=int(alpha * 100), shape=(1, 4, 24, 77))
    bias = None if mask is None else _bias(_masks()[mask])
    expected = eager.mixed_weights(scores.clone(), bias, 2.0, alpha, temperature)
    got = _native(scores, bias, 2.0, alpha, temperature)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    live = torch.isfinite(expected.new_zeros(()) if bias is None else bias.expand_as(scores).amax(-1))
    torch.testing.assert_close(got.sum(-1), live.float().expand(got.shape[:-1]), atol=2e-6, rtol=0)
    if mask == "bool":
        assert (got[0, 1, 3] == 0).all()  # the fully masked row: zeros, not NaN
        assert (got[..., 50:] == 0).all()  # masked keys get exactly 0 in both branches


@needs_kernel
@pytest.mark.parametrize("alpha", [1.25, 1.5, 1.75, 2.0])
def test_attention_matches_the_oracle_on_hard_cases(alpha):
    q, k, v = _hard_scores_inputs()  # ties, near-uniform rows, huge spreads, equal scores
    out = pladis.pladis_attention(q, k, v, alpha=alpha, backend="native")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, alpha), atol=1e-5, rtol=0)


@needs_kernel
@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_sparse_branch_is_exactly_sparse(alpha):
    """λ = 1 gives α-entmax alone: its zeros are exact zeros, the same as the eager solver's (up to
    entries within 1e-6 of the threshold)."""
    scores = _scores(seed=5, shape=(2, 2, 64, 77))
    got = _native(scores, None, 1.0, alpha, 1.0)
    expected = eager.mixed_weights(scores.clone(), None, 1.0, alpha, 1.0)
    differ = (got == 0) != (expected == 0)
    assert (got == 0).float().mean() > 0.5  # the rows are sparse
    assert (torch.maximum(got, expected)[differ] < 1e-6).all()
    assert differ.float().mean() < 1e-3


@needs_kernel
@pytest.mark.parametrize("n_query", [1, 15, 16, 17, 33])
def test_partial_blocks_write_only_their_rows(n_query):
    """Rows come in blocks of 16; the last block of a group may be partial and must not write past it."""
    groups, n_key = 3, 77
    buffer = torch.full((groups * n_key * n_query + 64,), 7.0)
    scores = buffer[: groups * n_key * n_query].view(groups, n_key, n_query)
    scores.copy_(_scores(seed=n_query, shape=(groups, n_key, n_query)))
    expected = eager.mixed_weights(scores.transpose(-2, -1).clone(), None, 2.0, 1.5, 1.0)
    native.native_weights(scores, None, 2.0, 1.5, 1.0)
    torch.testing.assert_close(scores.transpose(-2, -1), expected, atol=2e-6, rtol=0)
    assert (buffer[groups * n_key * n_query :] == 7.0).all()


@needs_kernel
def test_threads_do_not_change_a_bit():
    scores = _scores(seed=2, shape=(2, 5, 100, 77))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _native(scores, None, 2.0, 1.75, 1.0)
        torch.set_num_threads(3)
        three = _native(scores, None, 2.0, 1.75, 1.0)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, three)


@needs_kernel
@pytest.mark.parametrize("n_key", [1, 2, 300])
def test_any_number_of_keys(n_key):
    q, k, v = _qkv(b=1, h=2, nq=20, nk=n_key, d=16, seed=n_key)
    out = pladis.pladis_attention(q, k, v, alpha=1.5, backend="native")
    torch.testing.assert_close(out.double(), _literal(q, k, v, 2.0, 1.5), atol=1e-5, rtol=0)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    q, k, v = _qkv(nq=33, seed=4, spread=2.0, dtype=dtype)
    out = pladis.pladis_attention(q, k, v, alpha=1.75, backend="native")
    expected = pladis.pladis_attention(q, k, v, alpha=1.75, backend="eager")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected.float(), atol=1e-2, rtol=0)


@needs_kernel
@pytest.mark.parametrize("scale", [0.0, -1.0, 3.0])
def test_any_lambda(scale):
    q, k, v = _qkv(seed=9)
    out = pladis.pladis_attention(q, k, v, scale=scale, alpha=2.0, backend="native")
    torch.testing.assert_close(out.double(), _literal(q, k, v, scale, 2.0), atol=1e-5, rtol=0)
    if scale == 0.0:
        torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=0)


@needs_kernel
def test_tiles_and_pladis_weights_use_it():
    q, k, v = _qkv(b=2, h=4, nq=300, seed=11)
    whole = pladis.pladis_attention(q, k, v, alpha=1.25, backend="native")
    tiled = backends.eager.attention(q, k, v, None, 2.0, 1.25, 1.0, budget=5000,
                                     weights_fn=native.native_weights, keys_major=True)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(whole.double(), _literal(q, k, v, 2.0, 1.25), atol=1e-5, rtol=0)
    weights = pladis_weights(q, k, alpha=1.25, backend="native")
    assert weights.is_contiguous()
    torch.testing.assert_close(weights, pladis_weights(q, k, alpha=1.25, backend="eager"), atol=2e-6, rtol=0)


@needs_kernel
def test_auto_picks_native_on_cpu_for_alpha_above_one():
    q, k, v = _qkv()
    assert backends.choose("auto", q, k, v, None, 1.5) == "native"
    assert backends.choose("auto", q, k, v, None, 1.0) != "native"
    q.requires_grad_(True)
    assert backends.choose("auto", q, k, v, None, 1.5) == "eager"  # autograd: the differentiable path


def test_no_compiler_falls_back_with_a_warning(fresh_library, monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: None)
    q, k, v = _qkv(seed=1)
    with pytest.warns(RuntimeWarning, match="native kernel unavailable .no C compiler"):
        out = pladis.pladis_attention(q, k, v, backend="native")
    torch.testing.assert_close(out, pladis.pladis_attention(q, k, v, backend="eager"), atol=1e-6, rtol=0)
    assert backends.choose("auto", q, k, v, None, 1.5) != "native"


def test_a_failed_build_falls_back_with_a_warning(fresh_library, monkeypatch):
    monkeypatch.setattr(native, "_compiler", lambda: "false")  # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="did not build or load"):
        assert not native.usable(torch.device("cpu"))
    assert "did not build or load" in native.failure()
    assert not list(fresh_library.glob("*.so"))  # nothing half-written left in the cache
    q, k, v = _qkv(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto falls back quietly; the build failure was reported once
        out = pladis.pladis_attention(q, k, v)
    torch.testing.assert_close(out, pladis.pladis_attention(q, k, v, backend="eager"), atol=1e-6, rtol=0)


@needs_kernel
def test_the_library_is_built_once_then_loaded_from_the_cache(fresh_library):
    assert native.usable(torch.device("cpu"))
    (built,) = fresh_library.glob("pladis_native_*.so")
    stamp = built.stat().st_mtime_ns
    native._library.cache_clear()
    assert native.library_path() == built and built.stat().st_mtime_ns == stamp


def test_native_on_a_non_cpu_device_is_refused_with_the_reason():
    q = torch.empty(1, 1, 4, 8, device="meta")
    assert "CPU" in backends.native_fits(q, 1.5)


@needs_kernel
def test_an_unwritable_cache_builds_in_a_private_directory(fresh_library, monkeypatch):
    blocker = fresh_library / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("PLADIS_CACHE_DIR", str(blocker))
    assert native.usable(torch.device("cpu")), native.failure()
    assert blocker not in native.library_path().parents and native.library_path().is_file()


@needs_kernel
def test_nan_or_inf_scores_give_nan_rows_as_in_eager():
    """Never finite garbage: a row with a NaN or +inf score is NaN, the others are untouched."""
    scores = _scores(seed=3, shape=(1, 2, 20, 77))
    scores[0, 0, 5, 7] = float("nan")
    scores[0, 1, 9, 3] = float("inf")
    got = _native(scores, None, 2.0, 1.75, 1.0)
    expected = eager.mixed_weights(scores.clone(), None, 2.0, 1.75, 1.0)
    rows = torch.ones(2, 20, dtype=torch.bool)
    rows[0, 5] = rows[1, 9] = False
    assert torch.isnan(got[0][~rows]).all() and torch.isnan(expected[0][~rows]).all()
    torch.testing.assert_close(got[0][rows], expected[0][rows], atol=2e-6, rtol=0)


@needs_kernel
@pytest.mark.parametrize("alpha", [1.2, 1.25])
def test_huge_scores_with_a_small_temperature_stay_finite_and_leave_the_block_alone(alpha):
    """With T < 1 and a mask the sparse logits are (S + b)/T, solved with 1/T in the solver's scale (S/T
    itself is never formed, so it cannot overflow): the row of huge scores is finite and as eager's, and
    the 15 other rows of its block are solved as usual."""
    q = torch.linspace(-1, 1, 16).unsqueeze(-1)
    k = torch.linspace(-1, 1, 8).unsqueeze(-1)
    q[0, 0] = 3e38  # scores huge but finite
    kwargs = dict(alpha=alpha, scale=2.0, temperature=0.5, attn_mask=torch.ones(16, 8, dtype=torch.bool))
    got = pladis_weights(q, k, backend="native", **kwargs)
    expected = pladis_weights(q, k, backend="eager", **kwargs)
    assert torch.isfinite(got).all() and torch.isfinite(expected).all()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


@needs_kernel
@pytest.mark.parametrize("alpha", [1.05, 1.3])
def test_alpha_near_one_matches_the_float64_oracle(alpha):
    """α − 1 reaches the kernel rounded from double (α in float32 would shift α = 1.05 by 1e-6 relative)."""
    scores = _scores(seed=12, shape=(1, 1, 32, 77), spread=2.0)
    got = _native(scores, None, 1.0, alpha, 1.0)
    expected = oracle.entmax_bisect(scores.double(), alpha, dim=-1, n_iter=100)
    torch.testing.assert_close(got.double(), expected, atol=5e-7, rtol=0)


@pytest.mark.parametrize("backend", ["eager", pytest.param("native", marks=needs_kernel), "auto"])
def test_a_mask_with_a_larger_batch_than_the_inputs(backend):
    """A per-sample mask over shared queries gives one output per mask (as SDPA broadcasts)."""
    q, k, v = _qkv(b=1, h=2, nq=10, seed=13)
    mask = torch.rand(3, 1, 10, 77, generator=torch.Generator().manual_seed(1)) > 0.3
    out = pladis.pladis_attention(q, k, v, attn_mask=mask, backend=backend)
    expected = pladis.pladis_attention(q.expand(3, -1, -1, -1), k, v, attn_mask=mask, backend="eager")
    assert out.shape == (3, 2, 10, q.shape[-1])
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)
    weights = pladis_weights(q, k, attn_mask=mask, backend=backend)
    expected = pladis_weights(q.expand(3, -1, -1, -1), k, attn_mask=mask, backend="eager")
    torch.testing.assert_close(weights, expected, atol=2e-6, rtol=0)


def test_a_mask_on_another_device_is_refused():
    q = torch.empty(1, 1, 4, 8)
    assert "the mask is on meta" in backends.native_fits(q, 1.5, torch.empty(1, 1, 4, 3, device="meta"))
    with pytest.raises(ValueError, match="the mask is on meta"):
        native.native_weights(torch.zeros(1, 3, 4), torch.empty(1, 4, 3, device="meta"), 2.0, 1.5, 1.0)


def test_pladis_native_0_turns_it_off_quietly(fresh_library, monkeypatch):
    monkeypatch.setenv("PLADIS_NATIVE", "0")
    q, k, v = _qkv(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # off on purpose: auto says nothing
        assert backends.choose("auto", q, k, v, None, 1.5) != "native"
        out = pladis.pladis_attention(q, k, v)
    assert not list(fresh_library.glob("*"))  # nothing compiled
    torch.testing.assert_close(out, pladis.pladis_attention(q, k, v, backend="eager"), atol=1e-6, rtol=0)
    with pytest.warns(RuntimeWarning, match="turned off by PLADIS_NATIVE=0"):
        pladis.pladis_attention(q, k, v, backend="native")


@needs_kernel
@pytest.mark.parametrize("mask", [None, "bool", "sana"])
def test_row_log_sum_exps_match_torch(mask):
    """The kernel's optional lse output: torch.logsumexp of S + b per query row (−inf for the fully
    masked row), the weights unchanged by asking for it."""
    scores = _scores(seed=11, shape=(1, 4, 24, 77))
    bias = None if mask is None else _bias(_masks()[mask])
    logits = scores if bias is None else scores + bias
    lse = torch.empty(1, 4, 24)
    keys_major = scores.transpose(-2, -1).contiguous()
    weights, _ = native.native_weights(keys_major.clone(), bias, 2.0, 1.5, 1.0, lse=lse)
    torch.testing.assert_close(lse, torch.logsumexp(logits, -1), atol=2e-6, rtol=1e-6)
    assert torch.equal(weights, native.native_weights(keys_major, bias, 2.0, 1.5, 1.0)[0])
    if mask == "bool":
        assert lse[0, 1, 3] == float("-inf")


@needs_kernel
@pytest.mark.parametrize("budget", [None, 4 * 77 * 5])
def test_attention_with_lse_over_one_tile_and_many(budget, monkeypatch):
    """backends.attention_with_lse on the native path: the output of attention() and the rows'
    log-sum-exps of the scaled scores, whether the scores fit one tile or many (a few queries each)."""
    if budget is not None:
        monkeypatch.setitem(eager.CHUNK_ELEMENTS, "cpu", budget)
    q, k, v = _qkv(b=2, h=3, nq=40, nk=77, d=16, seed=12)
    out, lse = backends.attention_with_lse(q, k, v, None, 2.0, 1.5, 1.0, "auto")
    assert torch.equal(out, backends.attention(q, k, v, None, 2.0, 1.5, 1.0, "auto"))
    expected = torch.logsumexp((q.double() @ k.double().transpose(-2, -1)) / 4.0, -1)
    torch.testing.assert_close(lse.double(), expected, atol=3e-6, rtol=1e-6)
    _, none = backends.attention_with_lse(q, k, v, None, 2.0, 1.5, 1.0, "eager")
    assert none is None  # the other back-ends leave the log-sum-exps to the caller
