"""ONNX export of the joint-attention transformers (tiny FLUX.1, SD3.5, FLUX.2 Klein) with PLADIS' joint rule, λ an input."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import pladis
from pladis.joint import joint_attention, joint_weights
from pladis_onnx import export_denoiser, export_pipeline
from pladis_onnx.export_joint import JOINT_INPUTS, joint_attention_export, joint_dummy_inputs, joint_kind

TOL = 1e-4
TEXT = 16  # text tokens of the exported graphs


def _pipe(name: str) -> Any:
    return importlib.import_module(f"pladis_adapter_{name}.tiny").tiny_pipeline(seed=0)


@pytest.mark.parametrize("order", ["text_first", "image_first"])
@pytest.mark.parametrize("mask", [None, "bool"])
@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_export_rule_matches_the_joint_rule(order: str, mask: str | None, alpha: float) -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 14, 8, generator=gen) * 2 for _ in range(3))
    text = (0, 5) if order == "text_first" else (9, 14)
    attn_mask = None
    if mask:  # the last text key of batch 1 padded away (Qwen-Image-style mask over [text | image])
        attn_mask = torch.ones(2, 1, 1, 14, dtype=torch.bool)
        attn_mask[1, ..., text[1] - 1] = False
    for lam in (0.0, 2.0, torch.tensor([2.0])):
        got = joint_attention_export(q, k, v, attn_mask, 5, order, lam, alpha=alpha, temperature=0.7)
        scale = float(lam) if isinstance(lam, torch.Tensor) else lam
        ref = joint_weights(q, k, attn_mask, text=text, scale=scale, alpha=alpha, temperature=0.7) @ v
        assert torch.allclose(got, ref, atol=1e-5), (order, mask, alpha, lam)
        fast = joint_attention(q, k, v, attn_mask, text=text, scale=scale, alpha=alpha, temperature=0.7)
        assert torch.allclose(got, fast, atol=1e-5)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    assert torch.allclose(joint_attention_export(q, k, v, attn_mask, 5, order, torch.tensor([0.0])), dense, atol=1e-6)


@pytest.fixture(scope="module", params=["flux", "sd3", "flux2"])
def exported(request, tmp_path_factory) -> tuple[str, Any, Path]:
    name = request.param
    pipe = _pipe(name)
    path = export_denoiser(pipe.transformer, tmp_path_factory.mktemp(f"joint_{name}") / "denoiser.onnx",
                           alpha=1.5, text_length=TEXT)
    return name, pipe, path


def _torch(pipe: Any, kind: str, args: tuple[torch.Tensor, ...], lam: float) -> np.ndarray:
    named = dict(zip(JOINT_INPUTS[kind], args, strict=True))
    with pladis.enabled(pipe, scale=lam, alpha=1.5), torch.no_grad():
        return pipe.transformer(**named, return_dict=False)[0].numpy()


def test_graph_has_lambda_input_and_no_sort(exported) -> None:
    _, pipe, path = exported
    model = onnx.load(str(path))
    names = [i.name for i in model.graph.input]
    assert names == [*JOINT_INPUTS[joint_kind(pipe.transformer)], "pladis_scale"]
    assert not {n.op_type for n in model.graph.node} & {"TopK", "CumSum", "Sort"}


def test_rms_norm_symbolic_does_not_outlive_the_export(exported) -> None:
    from torch.onnx._internal.torchscript_exporter import registration

    assert not registration.registry.is_registered_op("aten::rms_norm", 17)


def test_ort_matches_torch_at_lambda_0_and_2(exported) -> None:
    name, pipe, path = exported
    kind = joint_kind(pipe.transformer)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for side, batch in ((8, None), (6, 3)):  # the export's shapes, then another image size and batch
        args = joint_dummy_inputs(pipe.transformer, kind, torch.float32, batch=batch, side=side, text_length=TEXT)
        feeds = {n: a.numpy() for n, a in zip(JOINT_INPUTS[kind], args, strict=True)}
        got = {lam: session.run(None, {**feeds, "pladis_scale": np.array([lam], np.float32)})[0] for lam in (0.0, 2.0)}
        with torch.no_grad():  # λ = 0 is the dense model itself, no PLADIS installed
            dense = pipe.transformer(**dict(zip(JOINT_INPUTS[kind], args, strict=True)), return_dict=False)[0].numpy()
        assert np.abs(got[0.0] - dense).max() <= TOL, (name, side)
        assert np.abs(got[2.0] - _torch(pipe, kind, args, 2.0)).max() <= TOL, (name, side)
        assert np.isfinite(got[2.0]).all()
        assert np.abs(got[2.0] - got[0.0]).max() > 1e-3  # λ acts through the graph input
        assert got[0.0].shape == dense.shape


def test_static_scale_and_dense_exports(tmp_path) -> None:
    pipe = _pipe("sd3")
    kind = "sd3"
    args = joint_dummy_inputs(pipe.transformer, kind, torch.float32, text_length=TEXT)
    feeds = {n: a.numpy() for n, a in zip(JOINT_INPUTS[kind], args, strict=True)}
    baked = export_denoiser(pipe.transformer, tmp_path / "baked.onnx", static_scale=2.0, text_length=TEXT)
    plain = export_denoiser(pipe.transformer, tmp_path / "dense.onnx", pladis=False, text_length=TEXT)
    for path, lam in ((baked, 2.0), (plain, 0.0)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == list(JOINT_INPUTS[kind])
        assert np.abs(session.run(None, feeds)[0] - _torch(pipe, kind, args, lam)).max() <= TOL


def test_pipeline_export_of_sd3_writes_the_transformer_for_clip_plus_t5_tokens(tmp_path) -> None:
    import json

    from pladis_onnx import OnnxPipeline

    out = export_pipeline(_pipe("sd3"), tmp_path / "out", max_sequence_length=TEXT)
    meta = json.loads((out / "pladis_onnx.json").read_text())
    assert (meta["kind"], meta["text_length"], meta["max_sequence_length"]) == ("sd3", 77 + TEXT, TEXT)
    encoder = onnx.load(str(out / "denoiser.onnx")).graph.input[1]
    assert encoder.name == "encoder_hidden_states" and encoder.type.tensor_type.shape.dim[1].dim_value == 77 + TEXT
    with pytest.raises(RuntimeError, match="holds only the sd3 transformer"):
        OnnxPipeline.from_dir(out, provider="cpu")


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory) -> tuple[Path, Path]:
    """``pladis export-onnx --model DIR --out …`` on the tiny FLUX.1 pipeline saved with ``save_pretrained``."""
    from pladis.cli import main

    model = tmp_path_factory.mktemp("model") / "flux"
    _pipe("flux").save_pretrained(model)
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export-onnx", "--model", str(model), "--out", str(out), "-q"]) == 0
    return model, out


def test_cli_export_writes_the_transformer_with_lambda_input(cli_export) -> None:
    import json

    _, out = cli_export
    assert {p.name for p in out.iterdir()} == {"denoiser.onnx", "pladis_onnx.json"}
    meta = json.loads((out / "pladis_onnx.json").read_text())
    assert (meta["kind"], meta["backbone"], meta["text_length"], meta["components"]) == ("flux", "flux", 512,
                                                                                          ["denoiser"])
    assert meta["cli"]["pladis_layers"] == 4  # 2 double-stream + 2 single-stream attention modules
    pipe = _pipe("flux")  # the same seed-0 weights as the saved model
    args = joint_dummy_inputs(pipe.transformer, "flux", torch.float32, text_length=512)
    session = ort.InferenceSession(str(out / "denoiser.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == meta["inputs"] == [*JOINT_INPUTS["flux"], "pladis_scale"]
    feeds = {n: a.numpy() for n, a in zip(JOINT_INPUTS["flux"], args, strict=True)}
    got = session.run(None, {**feeds, "pladis_scale": np.array([2.0], np.float32)})[0]
    assert np.abs(got - _torch(pipe, "flux", args, 2.0)).max() <= TOL


def test_cli_generate_onnx_on_a_transformer_export_is_one_line(cli_export, capsys) -> None:
    from pladis.cli import main

    _, out = cli_export
    capsys.readouterr()
    assert main(["generate", "a red circle", "--onnx", str(out)]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pladis")]
    assert len(err) == 1 and "holds only the flux transformer" in err[0] and "pladis_scale" in err[0]


def test_cli_refuses_fp16_for_joint_transformers(cli_export, tmp_path, capsys) -> None:
    from pladis.cli import main

    model, _ = cli_export
    capsys.readouterr()
    assert main(["export-onnx", "--model", str(model), "--out", str(tmp_path / "o"), "--fp16", "-q"]) != 0
    assert "fp16 export of the joint-attention FluxTransformer2DModel is not supported" in capsys.readouterr().err


def test_qwen_image_is_refused_naming_the_op(tmp_path) -> None:
    pipe = _pipe("qwen_image")
    with pytest.raises(ValueError, match=r"no symbolic for aten::view_as_complex"):
        export_denoiser(pipe.transformer, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("opset", [17, 18])
def test_rms_norm_symbolic_matches_torch(tmp_path, opset: int) -> None:
    from pladis_onnx.export import _onnx_export
    from pladis_onnx.export_joint import rms_norm_symbolic

    class Norms(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.rand(8) + 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weighted = torch.nn.functional.rms_norm(x, (8,), self.weight, eps=1e-5)
            return weighted + torch.nn.functional.rms_norm(x * 1e-4, (3, 8))  # no weight, default ε

    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    module = Norms().eval()
    with rms_norm_symbolic(opset):
        path = _onnx_export(module, (x,), tmp_path / "n.onnx", ["x"], ["y"], {"x": {0: "b"}}, opset)
    with torch.no_grad():
        ref = module(x[:1]).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x[:1].numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-5
