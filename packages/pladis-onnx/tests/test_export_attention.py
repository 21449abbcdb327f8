"""The fixed-iteration, sort-free α-entmax and Eq. 15 attention used for export, against ``pladis``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pladis import entmax, pladis_attention
from pladis_onnx import entmax_fixed, pladis_attention_export


def _hard_rows(nk: int = 77) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    rows = [
        torch.zeros(nk),  # all tied
        torch.full((nk,), 3.0).index_fill(0, torch.tensor([5, 9]), 4.0),  # tied maxima
        torch.linspace(0, 1e-4, nk),  # near-uniform
        torch.linspace(-1000, 1000, nk),  # huge spread
        torch.randn(nk, generator=gen) * 1e4,
        torch.randn(nk, generator=gen) * 1e-3,
        torch.randn(nk, generator=gen).pow(3) * 30,
        torch.randn(nk, generator=gen).masked_fill(torch.arange(nk) > 10, float("-inf")),  # -inf mask
        torch.randn(nk, generator=gen) + torch.where(torch.arange(nk) > 20, -10000.0, 0.0),  # SANA bias
        torch.randn(nk, generator=gen).masked_fill(torch.arange(nk) != 3, float("-inf")),  # one key left
    ]
    scales = torch.tensor([0.01, 0.3, 1.0, 3.0, 10.0, 100.0]).repeat_interleave(500)[:, None]
    rows.append(torch.randn(len(scales), nk, generator=gen) * scales)
    return torch.cat([r.reshape(-1, nk) for r in rows])


@pytest.mark.parametrize("alpha,tol", [(1.5, 2e-6), (2.0, 2e-6), (1.25, 2e-5), (1.75, 2e-5)])
def test_entmax_fixed_matches_pladis_on_hard_rows(alpha: float, tol: float) -> None:
    z = _hard_rows()
    got, ref = entmax_fixed(z, alpha), entmax(z, alpha)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, atol=tol, rtol=0)
    torch.testing.assert_close(got.sum(-1), torch.ones(len(z)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.3])
def test_fully_masked_rows_are_zero(alpha: float) -> None:
    z = torch.full((2, 7), float("-inf"))
    assert torch.equal(entmax_fixed(z, alpha), torch.zeros(2, 7))


@pytest.mark.parametrize("scale", [0.0, 2.0, -1.0, torch.tensor([2.0])])
@pytest.mark.parametrize("mask", [None, "bool", "bias"])
def test_attention_matches_pladis(scale: float | torch.Tensor, mask: str | None) -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, n, 16, generator=gen) for n in (40, 12, 12))
    attn_mask = None
    if mask == "bool":
        attn_mask = torch.arange(12).expand(2, 1, 1, 12) < torch.tensor([5, 12]).view(2, 1, 1, 1)
    elif mask == "bias":
        attn_mask = torch.where(torch.arange(12) < 7, 0.0, -10000.0).expand(2, 1, 1, 12)
    got = pladis_attention_export(q, k, v, scale, alpha=1.5, temperature=0.7, attn_mask=attn_mask)
    ref = pladis_attention(q, k, v, scale=float(scale), alpha=1.5, temperature=0.7, attn_mask=attn_mask)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


class _Attn(torch.nn.Module):
    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        return pladis_attention_export(q, k, v, lam, alpha=self.alpha)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.25])
def test_attention_exports_sort_free_and_matches_in_ort(tmp_path, alpha: float) -> None:
    import onnx
    import onnxruntime as ort

    q, k, v = torch.randn(1, 2, 64, 8), torch.randn(1, 2, 77, 8) * 3, torch.randn(1, 2, 77, 8)
    path = tmp_path / "attn.onnx"
    torch.onnx.export(_Attn(alpha), (q, k, v, torch.tensor([2.0])), str(path), dynamo=False, opset_version=17,
                      input_names=["q", "k", "v", "lam"], dynamic_axes={"q": {2: "n"}})
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert not ops & {"TopK", "CumSum", "Loop", "If", "Sort"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for lam in (0.0, 2.0):
        (got,) = session.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(),
                                    "lam": np.array([lam], np.float32)})
        ref = pladis_attention(q, k, v, scale=lam, alpha=alpha)
        np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)
