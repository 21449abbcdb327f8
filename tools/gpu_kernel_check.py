"""GPU correctness check of the Triton PLADIS kernel (run by tools/gpu_check.sh; not a pytest test).

Compares ``backend="triton"`` with the eager back-end (on fp32 copies of the inputs) on CUDA for fp16,
bf16 and fp32, hard score rows, masks, temperature, strided inputs and odd shapes, and fp32 against the
`entmax` package oracle (Eq. 15 written literally, float64), and the direct launches of cached plans
(pladis.kernels.triton_launch): counted, and bit for bit against Triton's launcher. Prints one line per case and a verdict.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import pladis
from pladis.kernels import backends, triton_launch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "pladis" / "tests"))
from test_backends import _literal as literal  # noqa: E402  (the tests' float64 Eq. 15 oracle)

TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}
DIRECT = {"launches": 0}
_real_launch = triton_launch._launch


def _counted_launch(plan, pointers):
    DIRECT["launches"] += 1
    _real_launch(plan, pointers)


triton_launch._launch = _counted_launch  # counts the direct launches each case makes


def cases(device):
    gen = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    every = ((1.25, 1.5, 1.75, 2.0), (torch.float32, torch.float16, torch.bfloat16))
    yield "sdxl 2x10x4096x77x64", (rnd(2, 10, 4096, 64), rnd(2, 10, 77, 64), rnd(2, 10, 77, 64)), {}, every
    q, k, v = rnd(1, 4, 64, 64), rnd(1, 4, 77, 64), rnd(1, 4, 77, 64)
    q[0, 0] *= 1e-4  # near-uniform rows
    q[0, 1] *= 100.0  # huge spreads
    k[0, 2, 40:] = k[0, 2, :37]  # tied scores
    q[0, 3] = 0.0  # all equal
    yield "hard rows", (q, k, v), {}, every
    keep = torch.ones(1, 4, 64, 77, dtype=torch.bool, device=device)
    keep[..., 50:] = False
    keep[0, 1, 3] = False  # fully masked row
    yield "bool mask + dead row", (q, k, v), {"attn_mask": keep}, ((1.5, 2.0), every[1])
    sana = torch.zeros(1, 1, 1, 77, device=device)
    sana[..., 60:] = -10000.0
    half = (torch.float32, torch.float16)
    yield "sana -1e4 bias, T=0.6", (q, k, v), {"attn_mask": sana, "temperature": 0.6}, ((1.5, 1.75), half)
    qs = rnd(2, 300, 10, 80).transpose(1, 2)  # the processor's strided layout, D = 80
    yield "strided q, D=80, Nq=300", (qs, rnd(2, 10, 77, 80), rnd(2, 10, 77, 80)), {}, ((1.5, 1.75), half)
    d160 = (rnd(2, 8, 64, 160), rnd(2, 8, 9, 160), rnd(2, 8, 9, 160))
    yield "D=160 (SD1.5 deep), Nk=9", d160, {}, ((2.0,), (torch.float16, torch.bfloat16))
    yield "Nk=256, broadcast kv", (rnd(2, 4, 128, 64), rnd(1, 1, 256, 64), rnd(1, 1, 256, 32)), {}, ((1.25,), half)
    yield "Nk=100 (64 + 64 keys)", (rnd(2, 10, 200, 64), rnd(2, 10, 100, 64), rnd(2, 10, 100, 64)), {}, ((1.75,), half)
    yield "Nk=154 (two prompt chunks)", (rnd(2, 10, 256, 64), rnd(2, 10, 154, 64), rnd(2, 10, 154, 64)), {}, ((1.5, 2.0), half)


def main() -> int:
    """``--quick``: fp16 and fp32 only (bf16 for α = 1.5), the SDXL-size case in fp16 only;
    ``--only NAME``: the cases whose name contains NAME."""
    device = torch.device("cuda")
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""  # a case-name substring
    print(f"# {torch.cuda.get_device_name(device)}; auto on CUDA fp16 picks:",
          backends.choose("auto", *(torch.empty(2, 10, n, 64, device=device, dtype=torch.float16) for n in (4096, 77, 77))))
    failures = 0
    for name, (q, k, v), kw, (alphas, dtypes) in cases(device):
        if only not in name:
            continue
        for alpha in alphas:
            for dtype in dtypes:
                if quick and (dtype == torch.bfloat16 and alpha != 1.5 or name.startswith("sdxl") and dtype != torch.float16):
                    continue
                qd, kd, vd = (t.to(dtype) for t in (q, k, v))
                begin = time.perf_counter()
                out = pladis.pladis_attention(qd, kd, vd, alpha=alpha, backend="triton", **kw)
                torch.cuda.synchronize()
                first = time.perf_counter() - begin
                ref = pladis.pladis_attention(qd.float(), kd.float(), vd.float(), alpha=alpha, backend="eager", **kw)
                err = (out.float() - ref).abs().max().item()
                ok = bool(torch.isfinite(out).all()) and err <= TOL[dtype]
                line = f"{name:26s} α={alpha:<5} {str(dtype):15s} max|triton−eager| {err:.2e}"
                if dtype == torch.float32 and q.shape[-2] <= 512:
                    bias = kw.get("attn_mask")
                    if bias is not None and bias.dtype == torch.bool:
                        bias = torch.zeros(bias.shape, device=device).masked_fill(~bias, float("-inf"))
                    oracle = literal(q, k, v, 2.0, alpha, kw.get("temperature", 1.0), bias)
                    err_o = (out.double() - oracle).abs().max().item()
                    ok = ok and err_o <= 3e-4  # the hard rows reach |S| ~ 1e3: fp32 rounding of S itself
                    line += f"  max|triton−oracle| {err_o:.2e}"
                # Calls 2 and 3 with the same layout: the checked first direct launch, then a plain one
                # (planned layouts: 4-D, one (B, H)); each gives the first call's bits.
                before = DIRECT["launches"]
                again = [pladis.pladis_attention(qd, kd, vd, alpha=alpha, backend="triton", **kw) for _ in range(2)]
                direct = DIRECT["launches"] - before
                planned = triton_launch._plannable(qd, kd, vd, None)
                same = all(torch.equal(o.view(torch.uint8), out.view(torch.uint8)) for o in again)
                ok = ok and same and triton_launch.direct_launch_enabled() and direct == (2 if planned else 0)
                line += f"  calls 2-3 same bits: {'yes' if same else 'NO'}, {direct} direct"
                failures += not ok
                print(f"{'PASS' if ok else 'FAIL'} {line}  (call {first * 1e3:.0f} ms)", flush=True)
    print(f"# {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
