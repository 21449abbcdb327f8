"""PLADIS under ``torch.compile``: Eq. 15 as the opaque operator ``torch.ops.pladis.attention``.

Users compile their denoiser (diffusers recommends ``torch.compile(unet, fullgraph=True)``); traced by
dynamo, the back-ends' data-dependent code broke that. The operator's fake implementation is checked by
``torch.library.opcheck``; compiled modules must give the uncompiled values.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

import pladis
from pladis.kernels import backends, custom_op
from pladis.kernels import compiled as compiled_backend


def _heads(b, h, n, d, transposed=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if transposed:  # as diffusers passes them: (B, N, H, D) memory
        return torch.randn(b, n, h, d, generator=gen).transpose(1, 2)
    return torch.randn(b, h, n, d, generator=gen)


CASES = {
    "diffusers heads": lambda: (_heads(2, 3, 20, 8), _heads(2, 3, 7, 8, seed=1), _heads(2, 3, 7, 8, seed=2), None),
    "3-D, mask": lambda: (
        torch.randn(4, 20, 8), torch.randn(4, 7, 8), torch.randn(4, 7, 5),
        torch.zeros(4, 1, 7).index_fill_(-1, torch.tensor([5, 6]), float("-inf")),
    ),
    "K/V broadcast over the batch": lambda: (_heads(2, 3, 20, 8), _heads(1, 3, 7, 8, seed=1), _heads(1, 3, 7, 8, seed=2), None),
    "5-D": lambda: (torch.randn(2, 2, 3, 9, 8), torch.randn(2, 2, 3, 7, 8), torch.randn(2, 2, 3, 7, 8), None),
}


@pytest.mark.parametrize("case", CASES)
def test_operator_passes_opcheck(case):
    """Schema, fake tensors (shapes, dtype, strides against the real run) and AOT dispatch, static and dynamic."""
    q, k, v, bias = CASES[case]()
    torch.library.opcheck(torch.ops.pladis.attention.default, (q, k, v, bias, 2.0, 1.5, 1.0, "eager"))


@pytest.mark.parametrize("case", CASES)
def test_operator_gives_the_back_end_values(case):
    q, k, v, bias = CASES[case]()
    out = custom_op.attention(q, k, v, bias, 2.0, 1.75, 1.0, "eager")
    expected = backends.attention(q, k, v, bias, 2.0, 1.75, 1.0, "eager")
    assert out.shape == expected.shape
    assert torch.equal(out, expected)
    if out.dim() == 4:  # (B, Nq, H, Dv) memory: diffusers' transpose + reshape afterwards copy nothing
        assert out.transpose(1, 2).is_contiguous()


def _attention_module(alpha=1.5, backend="auto"):
    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=24, heads=2, dim_head=16).eval()
    attn.set_processor(pladis.PLADISAttnProcessor(2.0, alpha, backend=backend))
    return attn


@pytest.mark.parametrize("compiler", ["eager", "aot_eager"])
@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.25])
def test_fullgraph_compile_gives_the_uncompiled_values(compiler, alpha):
    attn = _attention_module(alpha)
    hidden, context = torch.randn(2, 64, 32), torch.randn(2, 7, 24)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False  # padded prompt tokens
    torch._dynamo.reset()
    compiled = torch.compile(attn, fullgraph=True, backend=compiler)
    with torch.no_grad():
        for args in ((hidden, context, None), (hidden * 3, context, mask)):
            assert torch.equal(compiled(*args), attn(*args))


def test_compiled_graph_holds_one_pladis_node_per_call():
    attn = _attention_module()
    graphs = []

    def count_nodes(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch._dynamo.reset()
    compiled = torch.compile(attn, fullgraph=True, backend=count_nodes)
    with torch.no_grad():
        compiled(torch.randn(2, 64, 32), torch.randn(2, 7, 24))
    targets = [node.target for node in graphs[0].graph.nodes if node.op == "call_function"]
    assert targets.count(torch.ops.pladis.attention.default) == 1


@pytest.mark.skipif(not compiled_backend.usable(torch.device("cpu")), reason="inductor needs a C++ compiler")
def test_inductor_with_dynamic_shapes_and_the_compile_back_end():
    """Inductor around the operator, new query lengths without recompiling the graph by hand, and the
    CPU ``compile`` back-end (itself torch.compile) running inside the compiled graph."""
    attn = _attention_module(1.75, backend="compile")
    context = torch.randn(2, 7, 24)
    torch._dynamo.reset()
    compiled = torch.compile(attn, fullgraph=True, dynamic=True)
    with torch.no_grad():
        for n_query in (64, 40):
            hidden = torch.randn(2, n_query, 32)
            torch.testing.assert_close(compiled(hidden, context), attn(hidden, context), atol=1e-6, rtol=1e-6)


def test_uncompiled_calls_and_autograd_bypass_the_operator(monkeypatch):
    """Outside a trace the back-ends run directly (no operator dispatch per call); with autograd
    recording inside a trace the eager code is traced, so gradients flow as without compiling."""

    def refuse(*args, **kwargs):
        raise AssertionError("the opaque operator was used")

    monkeypatch.setattr(custom_op, "attention", refuse)
    attn = _attention_module()
    hidden, context = torch.randn(2, 16, 32, requires_grad=True), torch.randn(2, 7, 24)
    with torch.no_grad():
        attn(hidden, context)
    attn(hidden, context).sum().backward()
    expected = hidden.grad.clone()
    hidden.grad = None
    torch._dynamo.reset()
    torch.compile(attn, backend="eager")(hidden, context).sum().backward()
    torch.testing.assert_close(hidden.grad, expected)
