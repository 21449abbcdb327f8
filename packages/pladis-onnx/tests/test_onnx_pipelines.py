"""Export the tiny SD1.5 / SDXL / SANA pipelines, run them in ONNX Runtime (CPU) and compare with PyTorch."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

import pladis
import pladis.adapters
from pladis_onnx import OnnxPipeline, export_denoiser, export_pipeline, resolve_providers
from pladis_onnx.export import _dummy_denoiser_inputs
from pladis_onnx.wrappers import DENOISER_INPUTS

ADAPTERS = ["sd15", "sdxl", "sana"]
PROMPT = "a red circle above a blue square"


def _tiny(name: str) -> tuple[Any, dict[str, Any]]:
    module = importlib.import_module(f"pladis_adapter_{name}.tiny")
    return module.tiny_pipeline(seed=0), dict(module.FAST_CALL_KWARGS)


@pytest.fixture(scope="module", params=ADAPTERS)
def exported(request, tmp_path_factory) -> tuple[str, Path, OnnxPipeline]:
    name = request.param
    pipe, _ = _tiny(name)
    out = export_pipeline(pipe, tmp_path_factory.mktemp(f"onnx_{name}"), alpha=1.5)
    return name, out, OnnxPipeline.from_dir(out, provider="cpu")


def test_export_layout(exported) -> None:
    name, out, ort_pipe = exported
    names = {i.name for i in ort_pipe.sessions["denoiser"].get_inputs()}
    assert "pladis_scale" in names
    ops = {n.op_type for n in onnx.load(str(out / "denoiser.onnx")).graph.node}
    assert not ops & {"TopK", "CumSum", "Sort"}
    assert ort_pipe.provider == "CPUExecutionProvider"
    assert (out / "vae_decoder.onnx").is_file() and (out / "text_encoder.onnx").is_file()
    assert (out / "text_encoder_2.onnx").is_file() == (name == "sdxl")


@pytest.mark.parametrize("side", [8, 16])
def test_denoiser_parity_lambda_0_and_2_same_file(exported, side: int) -> None:
    name, _, ort_pipe = exported
    pipe, _ = _tiny(name)
    denoiser = pladis.adapters.find_denoiser(pipe)
    kind = ort_pipe.meta["kind"]
    inputs = _dummy_denoiser_inputs(denoiser, kind, torch.float32, size=side, seq=77 if kind != "sana" else 8)
    feeds = dict(zip(DENOISER_INPUTS[kind], (t.numpy() for t in inputs), strict=True))
    for lam in (0.0, 2.0):
        with pladis.enabled(pipe, scale=lam, alpha=1.5), torch.no_grad():
            named = dict(zip(DENOISER_INPUTS[kind], inputs, strict=True))
            if kind == "sana":
                ref = denoiser(named["sample"], encoder_hidden_states=named["encoder_hidden_states"],
                               encoder_attention_mask=named["encoder_attention_mask"],
                               timestep=named["timestep"], return_dict=False)[0]
            else:
                added = {"text_embeds": named["text_embeds"], "time_ids": named["time_ids"]} if kind == "sdxl" else None
                ref = denoiser(named["sample"], named["timestep"], encoder_hidden_states=named["encoder_hidden_states"],
                               added_cond_kwargs=added, return_dict=False)[0]
        extra = {k: v for k, v in feeds.items() if k not in ("sample", "timestep", "encoder_hidden_states")}
        got = ort_pipe.denoise(feeds["sample"], feeds["timestep"], feeds["encoder_hidden_states"], scale=lam, **extra)
        assert np.abs(got - ref.numpy()).max() <= 1e-4, (name, lam, side)


@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_full_run_matches_pytorch(exported, lam: float) -> None:
    name, _, ort_pipe = exported
    pipe, call = _tiny(name)
    call.update({k: v for k, v in pladis.adapters.default_registry().get(name).spec.preset().configure(pipe).items()
                 if k not in call})
    with pladis.enabled(pipe, scale=lam, alpha=1.5) if lam else contextlib.nullcontext():
        ref = pipe(PROMPT, generator=torch.Generator().manual_seed(3), **call).images
    extra = {"max_sequence_length": call["max_sequence_length"]} if name == "sana" else {}
    out = ort_pipe(PROMPT, scale=lam, num_inference_steps=call["num_inference_steps"], height=call["height"],
                   width=call["width"], guidance_scale=call["guidance_scale"], seed=3, output_type="np", **extra)
    assert out.provider == "CPUExecutionProvider"
    assert out.images.shape == ref.shape
    assert np.abs(out.images - ref).mean() <= 1 / 255
    pil = ort_pipe(PROMPT, scale=lam, num_inference_steps=1, height=32, width=32, seed=3, **extra).images
    assert pil[0].size == (32, 32)


def test_static_scale_bakes_lambda(tmp_path) -> None:
    pipe, _ = _tiny("sd15")
    path = export_denoiser(pipe.unet, tmp_path / "d.onnx", static_scale=2.0)
    names = {i.name for i in onnx.load(str(path)).graph.input}
    assert "pladis_scale" not in names and "sample" in names


@pytest.mark.parametrize("exported", ["sd15"], indirect=True)
def test_clear_errors(exported, tmp_path) -> None:
    name, out, _ = exported
    pipe, _ = _tiny("sd15")
    with pytest.raises(ValueError, match="opset 13 is too old"):
        export_pipeline(pipe, tmp_path / "x", opset=13)
    with pytest.raises(ValueError, match="alpha"):
        export_pipeline(pipe, tmp_path / "x", alpha=1.0)
    with pytest.raises(ValueError, match="ONNX export supports"):
        export_denoiser(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "m.onnx")
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in out.iterdir():
        if item.name != "vae_decoder.onnx":
            (broken / item.name).symlink_to(item)
    with pytest.raises(FileNotFoundError, match="vae_decoder.onnx"):
        OnnxPipeline.from_dir(broken)
    with pytest.raises(FileNotFoundError, match="pladis_onnx.json"):
        OnnxPipeline.from_dir(tmp_path)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
            resolve_providers("cuda")
    with pytest.raises(ValueError, match="provider"):
        resolve_providers("tpu")
