"""The Triton kernel's launch plans (pladis.kernels.triton_launch), on CPU without a GPU.

The direct launch reuses a compiled kernel for every call with the same plan key, so the key must fix
everything Triton specialises the kernel on. Triton's own binder (the function its launcher runs on every
call) is the oracle here: built for an sm_90 target, it runs on CPU tensors.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import types

import pytest
import torch

triton = pytest.importorskip("triton")
jit = pytest.importorskip("triton.runtime.jit")
if not hasattr(jit, "create_function_from_signature"):  # pragma: no cover - other Triton versions
    pytest.skip("this Triton has no create_function_from_signature", allow_module_level=True)

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import CUDABackend  # noqa: E402

from pladis.kernels import triton_launch  # noqa: E402
from pladis.kernels.triton_kernel import _pladis_kernel  # noqa: E402

_BINDER = jit.create_function_from_signature(_pladis_kernel.signature, _pladis_kernel.params, CUDABackend(GPUTarget("cuda", 90, 32)))


def _heads(b, h, n, d, dtype, offset=0, transposed=True, gen=None):
    """(b, h, n, d) heads at element ``offset`` of a larger buffer: as diffusers passes them
    ((b, n, h, d) memory, transposed) or contiguous."""
    size = b * h * n * d
    buf = torch.randn(size + offset, generator=gen).to(dtype)[offset:]
    if transposed:
        return buf.view(b, n, h, d).transpose(1, 2)
    return buf.view(b, h, n, d)


def _inputs(offsets=(0, 0, 0), nq=40, nk=77, d=64, dtype=torch.float16, transposed=True, bias=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (_heads(2, 3, n, d, dtype, off, transposed, gen) for n, off in zip((nq, nk, nk), offsets, strict=True))
    mask = torch.zeros(2, 1, 1, nk, dtype=dtype) if bias else None
    return q, k, v, mask


def _specialization(q, k, v, bias, scale=2.0, alpha=1.5, temperature=1.0):
    out, grid, args, meta = triton_launch.launch_plan(q, k, v, bias, scale, alpha, temperature)
    meta = {name: val for name, val in meta.items() if name not in ("num_warps", "num_stages")}
    params, specialization, _ = _BINDER(*args, **meta)
    return specialization, params, args, meta


LAYOUTS = [
    dict(),
    dict(transposed=False),
    dict(nk=16, d=40),
    dict(nk=154, dtype=torch.bfloat16),
    dict(bias=True),
    dict(nq=33, dtype=torch.float32),
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_equal_plan_keys_mean_equal_triton_specialisations(layout):
    """Same key, other data, other (aligned) pointers, λ and T: Triton picks the very same kernel."""
    q, k, v, bias = _inputs(**layout)
    key = triton_launch._plan_key(q, k, v, bias, 2.0, 1.5, 1.0)
    reference = _specialization(q, k, v, bias)[0]
    width = q.element_size()
    for seed, offsets in ((1, (0, 0, 0)), (2, (16 // width, 32 // width, 48 // width)), (3, (64, 128, 8 * 16))):
        q2, k2, v2, bias2 = _inputs(offsets=offsets, seed=seed, **layout)
        assert q2.data_ptr() != q.data_ptr()
        assert triton_launch._plan_key(q2, k2, v2, bias2, 2.0, 1.5, 1.0) == key
        assert _specialization(q2, k2, v2, bias2, scale=-1.0 - seed)[0] == reference


def test_misaligned_pointers_change_the_specialisation():
    """Why direct launches require 16-byte aligned pointers: the key does not hold the alignment."""
    q, k, v, bias = _inputs()
    q2, k2, v2, _ = _inputs(offsets=(1, 0, 0), seed=4)  # 2 bytes off
    assert triton_launch._plan_key(q2, k2, v2, None, 2.0, 1.5, 1.0) == triton_launch._plan_key(q, k, v, None, 2.0, 1.5, 1.0)
    assert _specialization(q2, k2, v2, None)[0] != _specialization(q, k, v, None)[0]


def test_a_direct_launch_passes_what_tritons_launcher_passes():
    """The plan's argument tail (scalars, then constexprs, in signature order) is what JITFunction.run
    hands the compiled kernel after the five data pointers."""
    q, k, v, bias = _inputs(bias=True)
    _, params, args, meta = _specialization(q, k, v, bias)
    out, grid, args, full_meta = triton_launch.launch_plan(q, k, v, bias, 2.0, 1.5, 1.0)
    plan = triton_launch._Plan(grid, out.transpose(1, 2).shape, args, full_meta)
    launched = tuple(params.values())
    assert launched[5:] == plan.tail
    assert all(isinstance(t, torch.Tensor) for t in launched[:5])
    assert len(launched) == len(triton_launch._PARAMS)


def test_output_is_written_as_sdpa_lays_it_out():
    """(B, Nq, H, Dv) memory viewed as (B, H, Nq, Dv): the processor's transpose + reshape is free."""
    q, k, v, _ = _inputs()
    out = triton_launch.launch_plan(q, k, v, None, 2.0, 1.5, 1.0)[0]
    assert out.shape == (2, 3, 40, 64)
    assert out.transpose(1, 2).is_contiguous()
    q3 = q[0]  # three dims: a plain contiguous output
    assert triton_launch.launch_plan(q3, k[0], v[0], None, 2.0, 1.5, 1.0)[0].is_contiguous()


def test_plannable_layouts():
    q, k, v, bias = _inputs(bias=True)
    assert triton_launch._plannable(q, k, v, bias)
    assert triton_launch._plannable(q, k, v, None)
    assert not triton_launch._plannable(q[0], k[0], v[0], None)  # 3-D: broadcast rules, no plan
    assert not triton_launch._plannable(q, k[:1], v[:1], None)  # K, V broadcast over the batch
    assert not triton_launch._plannable(q, k, v, bias.double())  # converted per call


def test_plan_keys_tell_apart_every_launch_that_differs():
    """Equal keys ⇔ equal (specialisation, scalar arguments, constexprs), over layouts that differ in one
    tensor's strides, a size, the dtype, the mask or α."""
    pool = []
    for nk in (16, 77):
        for which in range(4):  # none, or one of q, k, v contiguous instead of transposed
            q, k, v, _ = _inputs(nk=nk)
            if which:
                tensors = [q, k, v]
                tensors[which - 1] = tensors[which - 1].contiguous()
                q, k, v = tensors
            pool.append((q, k, v, None, 1.5))
    q, k, v, bias = _inputs(bias=True)
    pool += [(q, k, v, bias, 1.5), (q, k, v, None, 2.0), (q, k, v, bias[..., :1].expand(2, 1, 1, 77), 1.5)]  # a stride-0 mask
    q, k, v, _ = _inputs(dtype=torch.bfloat16)
    pool.append((q, k, v, None, 1.5))
    seen = {}
    for q, k, v, bias, alpha in pool:
        spec, params, args, meta = _specialization(q, k, v, bias, alpha=alpha)
        launch = (tuple(map(tuple, spec)), args[5:], tuple(sorted(meta.items())))
        seen.setdefault(triton_launch._plan_key(q, k, v, bias, 2.0, alpha, 1.0), set()).add(launch)
    assert all(len(launches) == 1 for launches in seen.values())
    assert len(seen) == len(pool)


@pytest.mark.parametrize(("nk", "d", "capped"), [(77, 64, True), (77, 80, True), (128, 64, True), (154, 64, False), (9, 160, False)])
def test_register_cap_only_for_tiles_measured_to_compile_under_it(nk, d, capped):
    q, k, v, _ = _inputs(nk=nk, d=d)
    meta = triton_launch.launch_plan(q, k, v, None, 2.0, 1.5, 1.0)[3]
    assert meta.get("maxnreg") == (triton_launch._MAX_REGISTERS if capped else None)
    assert triton_launch.launch_plan(q, k, v, None, 2.0, 1.5, 1.0, maxnreg=200)[3]["maxnreg"] == 200


class _FakeKernel:
    """Stands in for the JIT kernel: ``kernel[grid](*args, **meta)`` fails while ``fail(meta)``."""

    def __init__(self, fail, message="ptxas fatal: Insufficient registers (128) to compile instruction"):
        self.fail, self.message, self.launches = fail, message, []

    def __getitem__(self, grid):
        def launch(*args, **meta):
            if self.fail(meta):
                raise RuntimeError(self.message)
            self.launches.append(dict(meta))
            return "compiled"

        return launch


def test_a_register_cap_that_does_not_compile_is_dropped(monkeypatch):
    fake = _FakeKernel(lambda meta: "maxnreg" in meta)
    monkeypatch.setattr(triton_launch, "_pladis_kernel", fake)
    monkeypatch.setitem(triton_launch._register_cap, "enabled", True)
    meta = {"BLOCK_M": 64, "maxnreg": 128}
    assert triton_launch._triton_launch((1, 1), (), meta) == "compiled"
    assert meta == {"BLOCK_M": 64} and fake.launches == [{"BLOCK_M": 64}]  # dropped, launched once
    q, k, v, _ = _inputs()
    assert "maxnreg" not in triton_launch.launch_plan(q, k, v, None, 2.0, 1.5, 1.0)[3]  # and from later plans
    broken = _FakeKernel(lambda meta: True)
    monkeypatch.setattr(triton_launch, "_pladis_kernel", broken)
    with pytest.raises(RuntimeError, match="Insufficient registers"):
        triton_launch._triton_launch((1, 1), (), {"BLOCK_M": 64, "maxnreg": 128})
    with pytest.raises(RuntimeError):  # no cap to drop: the error stands
        triton_launch._triton_launch((1, 1), (), {"BLOCK_M": 64})
    assert broken.launches == []


def test_other_compile_errors_keep_the_register_cap(monkeypatch):
    monkeypatch.setattr(triton_launch, "_pladis_kernel", _FakeKernel(lambda meta: True, "out of resource: shared memory"))
    monkeypatch.setitem(triton_launch._register_cap, "enabled", True)
    meta = {"BLOCK_M": 64, "maxnreg": 128}
    with pytest.raises(RuntimeError, match="shared memory"):
        triton_launch._triton_launch((1, 1), (), meta)
    assert meta["maxnreg"] == 128 and triton_launch._register_cap["enabled"]


def test_inputs_on_another_gpu_are_launched_there(monkeypatch):
    """Triton launches on the current device: inputs on cuda:1 while cuda:0 is current (a pipeline split
    over GPUs) switch devices before anything is built or launched, and switch back."""
    current, entered = {"index": 0}, []

    @contextlib.contextmanager
    def device(target):
        entered.append(target)
        before, current["index"] = current["index"], target.index
        try:
            yield
        finally:
            current["index"] = before

    class Reached(Exception):
        pass

    def plannable(*args):
        raise Reached(current["index"])

    monkeypatch.setattr(torch.cuda, "current_device", lambda: current["index"])
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(triton_launch, "_plannable", plannable)
    query = types.SimpleNamespace(device=torch.device("cuda", 1))
    with pytest.raises(Reached) as reached:
        triton_launch.triton_attention(query, query, query, None, 2.0, 1.5, 1.0)
    assert reached.value.args == (1,) and entered == [torch.device("cuda", 1)] and current["index"] == 0


class _FakeJIT:
    """Stands in for the JIT kernel in the dispatch tests: Triton's launch fills the output with the byte
    0xFF (an fp16 NaN) and returns a stand-in compiled kernel."""

    def __init__(self):
        self.launches, self.pre_run_hooks = 0, []

    def __getitem__(self, grid):
        def launch(*args, **meta):
            self.launches += 1
            args[4].view(torch.uint8).fill_(0xFF)
            return "compiled"

        return launch


@pytest.fixture
def dispatch(monkeypatch):
    """Direct launches on CPU tensors: a fake JIT kernel and a fake ``_launch`` that writes ``byte``s at
    the output pointer (or raises ``error``); returns (fake JIT, list of direct launches, settings)."""
    fake, direct, settings = _FakeJIT(), [], {"byte": 0xFF, "error": None}

    def launch(plan, pointers):
        if settings["error"]:
            raise settings["error"]
        direct.append((plan, pointers))
        ctypes.memset(pointers[4], settings["byte"], math.prod(plan.out_shape) * 2)

    monkeypatch.setattr(triton_launch, "_pladis_kernel", fake)
    monkeypatch.setattr(triton_launch, "_launch", launch)
    monkeypatch.setattr(triton_launch, "_plans", {})
    monkeypatch.setitem(triton_launch._direct, "enabled", True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    return fake, direct, settings


def _call(q, k, v):
    return triton_launch.triton_attention(q, k, v, None, 2.0, 1.5, 1.0)


def test_direct_launches_start_after_one_checked_launch(dispatch):
    fake, direct, _ = dispatch
    q, k, v, _ = _inputs()
    _call(q, k, v)  # Triton compiles: its kernel is kept, unchecked
    (plan,) = triton_launch._plans.values()
    assert (fake.launches, direct, plan.kernel, plan.checked) == (1, [], "compiled", False)
    _call(q, k, v)  # Triton's launch and a direct one into scratch, compared bit for bit (NaN bits too)
    assert (fake.launches, len(direct), plan.checked) == (2, 1, True)
    out = _call(q, k, v)  # direct only
    assert (fake.launches, len(direct)) == (2, 2) and triton_launch.direct_launch_enabled()
    assert direct[-1] == (plan, (q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), out.data_ptr()))
    assert torch.equal(out.view(torch.uint8), torch.full_like(out.view(torch.uint8), 0xFF))


@pytest.mark.parametrize("failure", ["differs", "raises"])
def test_a_first_direct_launch_that_fails_turns_direct_launches_off(dispatch, failure):
    fake, direct, settings = dispatch
    q, k, v, _ = _inputs()
    _call(q, k, v)
    settings["byte"], settings["error"] = (0x11, None) if failure == "differs" else (0xFF, OSError("boom"))
    with pytest.warns(RuntimeWarning, match="direct Triton launches turned off"):
        out = _call(q, k, v)
    assert not triton_launch.direct_launch_enabled()
    assert torch.equal(out.view(torch.uint8), torch.full_like(out.view(torch.uint8), 0xFF))  # Triton's output
    _call(q, k, v)
    assert fake.launches == 3 and len(direct) == (1 if failure == "differs" else 0)


def test_no_direct_launch_for_misaligned_inputs_during_capture_or_after_a_knob_change(dispatch, monkeypatch):
    fake, direct, _ = dispatch
    q, k, v, _ = _inputs(offsets=(1, 0, 0))  # q 2 bytes off: Triton specialises it otherwise
    for _ in range(3):
        _call(q, k, v)
    assert fake.launches == 3 and direct == [] and next(iter(triton_launch._plans.values())).kernel is None
    q, k, v, _ = _inputs()
    _call(q, k, v)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    _call(q, k, v)  # being captured: no check (it would sync), Triton's launch
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(triton_launch, "_knobs", lambda: ("debug",))
    _call(q, k, v)  # Triton's settings changed: its kernel is looked up again, and kept unchecked
    assert fake.launches == 6 and direct == []
    _call(q, k, v)
    assert len(direct) == 1 and fake.launches == 7


def test_a_mask_on_another_device_is_not_planned():
    q, k, v, bias = _inputs(bias=True)
    assert not triton_launch._plannable(q, k, v, torch.zeros(bias.shape, device="meta"))
    key = triton_launch._plan_key(q, k, v, bias, 2.0, 1.5, 1.0)
    assert key != triton_launch._plan_key(q, k, v, torch.zeros(bias.shape, device="meta"), 2.0, 1.5, 1.0)
