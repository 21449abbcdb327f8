"""Gradients through PLADIS (Eq. 15): training, and samplers that differentiate through cross-attention.

Oracle: autograd through the `entmax` package (sort-based entmax15 / sparsemax, bisection otherwise) in
float64 — the exact α-entmax Jacobian — and, at λ = 0, diffusers' own attention.
"""

from __future__ import annotations

import os
import sys

import entmax as oracle
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import pladis
from pladis.attention import pladis_weights

sys.path.insert(0, os.path.dirname(__file__))
from test_backends import ALPHAS, _literal, _qkv  # noqa: E402  (the float64 Eq. 15 oracle)


def _oracle_entmax(z, alpha):
    if alpha == 1.5:
        return oracle.entmax15(z, dim=-1)
    if alpha == 2.0:
        return oracle.sparsemax(z, dim=-1)
    return oracle.entmax_bisect(z, alpha, n_iter=100)


def _grads(fn, *tensors):
    """∂(fn(*tensors) · g)/∂tensors for a fixed random g."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(out.dtype)
    (out * g).sum().backward()
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("alpha", [1.0, *ALPHAS])
def test_entmax_function_has_the_exact_jacobian(alpha):
    z = torch.randn(6, 11, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    z[0, :5] = z[0, 5]  # ties
    ours = _grads(lambda t: pladis.entmax(t, alpha), z)[0]
    reference = _grads(lambda t: torch.softmax(t, -1) if alpha == 1.0 else _oracle_entmax(t, alpha), z)[0]
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)


def test_masked_entries_and_dead_rows_get_zero_gradient():
    z = torch.randn(3, 9, dtype=torch.float64)
    z[0, 2:5] = float("-inf")
    z[1] = float("-inf")  # every key masked
    for alpha in (1.5, 2.0, 1.75):
        grad = _grads(lambda t, a=alpha: pladis.entmax(t, a), z)[0]
        assert torch.isfinite(grad).all()
        assert (grad[0, 2:5] == 0).all() and (grad[1] == 0).all()
        finite = z.clone()
        finite[0, 2:5] = -1e9  # the oracle cannot take −inf; −1e9 gets no weight either
        finite[1] = 0.0
        reference = _grads(lambda t, a=alpha: _oracle_entmax(t, a), finite)[0]
        torch.testing.assert_close(grad[[0, 2]], reference[[0, 2]], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_pladis_attention_gradients_match_the_oracle(alpha):
    q, k, v = _qkv(b=1, h=2, nq=12, nk=9, d=8, seed=2)
    mask = torch.ones(1, 1, 1, 9, dtype=torch.bool)
    mask[..., 7:] = False  # padded prompt tokens
    bias = torch.zeros(1, 1, 1, 9, dtype=torch.float64).masked_fill(~mask, -1e9)
    ours = _grads(lambda a, b, c: pladis.pladis_attention(a, b, c, scale=2.0, alpha=alpha, temperature=0.7, attn_mask=mask), q, k, v)
    reference = _grads(lambda a, b, c: _literal(a, b, c, 2.0, alpha, 0.7, bias), q.double(), k.double(), v.double())
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine.double(), theirs, atol=2e-5, rtol=1e-4)


def test_pladis_weights_gradients_match_the_oracle():
    q, k, _ = _qkv(b=1, h=2, nq=6, nk=9, d=8, seed=4)

    def literal_weights(a, b):
        s = a @ b.transpose(-1, -2) / 8**0.5
        return torch.softmax(s, -1) + 2.0 * (oracle.entmax15(s, dim=-1) - torch.softmax(s, -1))

    ours = _grads(lambda a, b: pladis_weights(a, b, scale=2.0, alpha=1.5), q, k)
    reference = _grads(literal_weights, q.double(), k.double())
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine.double(), theirs, atol=2e-5, rtol=1e-4)


def test_processor_backward_at_lambda_zero_is_diffusers_attention():
    """Through a diffusers Attention module (the path of training and of gradient-guided samplers)."""
    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=24, heads=2, dim_head=16)
    hidden, context = torch.randn(2, 16, 32), torch.randn(2, 7, 24)
    grads = {}
    for name, processor in (("dense", AttnProcessor2_0()), ("pladis", pladis.PLADISAttnProcessor(0.0, 1.5))):
        attn.set_processor(processor)
        attn.zero_grad()
        grads[name] = _grads(lambda h, c: attn(h, c), hidden, context) + [attn.to_q.weight.grad.clone()]
    for dense, ours in zip(grads["dense"], grads["pladis"], strict=True):
        torch.testing.assert_close(ours, dense, atol=1e-6, rtol=1e-5)


def test_processor_backward_runs_eq15_with_gradients():
    """λ = 2: the hidden states' gradient through the module is Eq. 15's (was an in-place error)."""
    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=24, heads=2, dim_head=16)
    attn.set_processor(pladis.PLADISAttnProcessor(2.0, 1.5))
    hidden, context = torch.randn(2, 16, 32), torch.randn(2, 7, 24)

    def literal(h, c):
        q, k, v = (t.view(2, -1, 2, 16).transpose(1, 2) for t in (attn.to_q(h), attn.to_k(c), attn.to_v(c)))
        out = _literal(q, k, v, 2.0, 1.5).transpose(1, 2).reshape(2, -1, 32).float()
        return attn.to_out[0](out)

    ours = _grads(lambda h, c: attn(h, c), hidden, context)
    reference = _grads(literal, hidden, context)
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, atol=2e-5, rtol=1e-4)


def test_an_unknown_backend_is_refused_with_gradients_too():
    q, k, v = (t.requires_grad_(True) for t in _qkv(b=1, h=1, nq=4, nk=5, d=8))
    with pytest.raises(ValueError, match="backend must be one of"):
        pladis.pladis_attention(q, k, v, backend="fastest")


def test_a_fused_backend_asked_for_with_gradients_warns_and_differentiates():
    q, k, v = _qkv(b=1, h=1, nq=4, nk=5, d=8)
    expected = _grads(lambda a: pladis.pladis_attention(a, k, v), q)[0]
    with pytest.warns(RuntimeWarning, match="inference-only; autograd is recording"):
        grad = _grads(lambda a: pladis.pladis_attention(a, k, v, backend="triton"), q)[0]
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("alpha", [1.0, *ALPHAS])
def test_public_entmax_has_the_exact_gradient(alpha):
    """pladis.entmax (any dim, half precision too) differentiates like the oracle (it held τ fixed before)."""
    z = torch.randn(5, 8, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = _grads(lambda t: pladis.entmax(t, alpha, dim=1), z)[0]
    reference = _grads(lambda t: (torch.softmax(t, 1) if alpha == 1.0 else _oracle_entmax(t.movedim(1, -1), alpha).movedim(-1, 1)), z)[0]
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    half = _grads(lambda t: pladis.entmax(t, alpha, dim=1), z.half())[0]
    torch.testing.assert_close(half.double(), reference, atol=2e-2, rtol=2e-2)
