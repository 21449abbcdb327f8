"""SDXL-family distilled adapters (few-step presets, Euler Ancestral / LCM / TCD, explicit timesteps, CFG 0)
run end to end in ONNX Runtime against PyTorch, and the ``fp16=True`` export."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import pytest
import torch

import pladis
import pladis.adapters
from pladis_onnx import OnnxPipeline, export_pipeline
from pladis_onnx.export import _dummy_denoiser_inputs
from pladis_onnx.wrappers import DENOISER_INPUTS

PROMPT = "a red circle above a blue square"
#: (adapter, preset, extra call kwargs): 1-step presets of each adapter, plus multi-step runs where the
#: scheduler draws noise between steps (Euler Ancestral, LCM, TCD with the preset's eta = 1).
CASES = [
    ("sdxl-turbo", "1step", {}),
    ("sdxl-turbo", "4step", {}),
    ("dmd2", "1step", {}),
    ("dmd2", "4step", {}),
    ("sdxl-lightning", "1step", {}),
    ("hyper-sdxl", "1step", {}),
    ("hyper-sdxl", "unified", {"num_inference_steps": 3}),
]
ADAPTERS = sorted({case[0] for case in CASES})


def _spec(name: str) -> Any:
    return pladis.adapters.default_registry().get(name).spec


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, OnnxPipeline]:
    """One export per distilled adapter's tiny pipeline (tagged with its 1-step preset, as loaders tag theirs)."""
    found = {}
    for name in ADAPTERS:
        pipe = _spec(name).tiny(seed=0)
        out = export_pipeline(pipe, tmp_path_factory.mktemp(f"onnx_{name}"), alpha=1.5)
        found[name] = OnnxPipeline.from_dir(out, provider="cpu")
    return found


@pytest.mark.parametrize(("name", "preset", "extra"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_distilled_full_run_matches_pytorch(exports, name: str, preset: str, extra: dict[str, Any]) -> None:
    ort_pipe = exports[name]
    assert ort_pipe.meta["backbone"] == name and ort_pipe.meta["kind"] == "sdxl"
    spec = _spec(name)
    pipe = spec.tiny(seed=0)
    call = {**spec.preset(preset).configure(pipe), "height": 32, "width": 32, **extra}
    assert call["guidance_scale"] == 0.0
    with pladis.enabled(pipe, scale=2.0, alpha=1.5):
        ref = pipe(PROMPT, generator=torch.Generator().manual_seed(3), output_type="np", **call).images
    out = ort_pipe(PROMPT, scale=2.0, preset=preset, height=32, width=32, seed=3, output_type="np", **extra)
    assert type(ort_pipe.make_scheduler(preset)).__name__ == type(pipe.scheduler).__name__
    assert out.images.shape == ref.shape == (1, 32, 32, 3)
    assert np.abs(out.images - ref).mean() <= 1 / 255, (name, preset)


def test_ancestral_noise_follows_the_seed(exports) -> None:
    """Euler Ancestral's per-step noise comes from the caller's generator, as in the PyTorch pipeline."""
    ort_pipe = exports["sdxl-turbo"]
    kwargs = dict(scale=2.0, preset="4step", height=32, width=32, output_type="np")
    first = ort_pipe(PROMPT, seed=3, **kwargs).images
    again = ort_pipe(PROMPT, generator=torch.Generator().manual_seed(3), **kwargs).images
    other = ort_pipe(PROMPT, seed=4, **kwargs).images
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_export_records_the_pipelines_preset(exports) -> None:
    """The preset a pipeline was loaded with (``pipe._pladis_preset``) is the ORT pipeline's default: DMD2's
    tiny pipeline carries the 1-step UNet's preset, while the adapter's default preset is "4step"."""
    ort_pipe = exports["dmd2"]
    assert _spec("dmd2").default_preset == "4step"
    assert ort_pipe.meta["preset"] == "1step" and ort_pipe.resolve_preset(None) == "1step"
    assert ort_pipe.preset_kwargs()["timesteps"] == [399] and ort_pipe.resolve_preset("4step") == "4step"


@pytest.fixture(scope="module")
def fp16_export(tmp_path_factory) -> tuple[Any, OnnxPipeline]:
    from pladis_adapter_sdxl import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    out = export_pipeline(pipe, tmp_path_factory.mktemp("onnx_fp16"), alpha=1.5, fp16=True)
    return pipe, OnnxPipeline.from_dir(out, provider="cpu")  # every graph loads in ORT CPU


def test_fp16_export_holds_fp16_weights_and_restores_the_pipeline(fp16_export) -> None:
    pipe, ort_pipe = fp16_export
    graph = onnx.load(str(ort_pipe.directory / "denoiser.onnx")).graph
    sizes: Counter[str] = Counter()
    for init in graph.initializer:
        sizes[onnx.TensorProto.DataType.Name(init.data_type)] += int(np.prod(init.dims))
    assert sizes["FLOAT16"] > 0.99 * (sizes["FLOAT16"] + sizes["FLOAT"])
    inputs = {i.name: i.type for i in ort_pipe.sessions["denoiser"].get_inputs()}
    assert inputs["sample"] == inputs["encoder_hidden_states"] == "tensor(float16)"
    assert inputs["pladis_scale"] == "tensor(float)"
    for name in ("text_encoder", "text_encoder_2"):
        assert ort_pipe.sessions[name].get_outputs()[0].type == "tensor(float16)"
        assert getattr(pipe, name).config._attn_implementation == "sdpa"  # restored after the export
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float32}
    assert ort_pipe.meta["fp16"] is True


def test_fp16_denoiser_close_to_fp32_pytorch(fp16_export) -> None:
    pipe, ort_pipe = fp16_export
    inputs = _dummy_denoiser_inputs(pipe.unet, "sdxl", torch.float32, size=8)
    named = dict(zip(DENOISER_INPUTS["sdxl"], inputs, strict=True))
    with pladis.enabled(pipe, scale=2.0, alpha=1.5), torch.no_grad():
        ref = pipe.unet(named["sample"], named["timestep"], encoder_hidden_states=named["encoder_hidden_states"],
                        added_cond_kwargs={"text_embeds": named["text_embeds"], "time_ids": named["time_ids"]},
                        return_dict=False)[0].numpy()
    feeds = {k: v.numpy() for k, v in named.items()}
    got = ort_pipe.denoise(feeds.pop("sample"), feeds.pop("timestep"), feeds.pop("encoder_hidden_states"),
                           scale=2.0, **feeds)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - ref).max() <= 5e-2
    image = ort_pipe(PROMPT, scale=2.0, num_inference_steps=2, height=32, width=32, seed=3, output_type="np").images
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()


def test_export_of_an_fp16_pipeline_takes_the_dtype_asked_for_and_gives_the_pipeline_back(tmp_path) -> None:
    """An fp16 pipeline exported without ``fp16`` gives fp32 graphs that all load (its text encoder was
    exported in fp16 with the fp32 path's attention and failed to load); either way it stays fp16."""
    from pladis_adapter_sd15 import tiny_pipeline

    pipe = tiny_pipeline(seed=0).to(torch.float16)
    for fp16, expected in ((False, "tensor(float)"), (True, "tensor(float16)")):
        ort_pipe = OnnxPipeline.from_dir(export_pipeline(pipe, tmp_path / str(fp16), fp16=fp16), provider="cpu")
        assert ort_pipe.meta["fp16"] is fp16
        assert {i.name: i.type for i in ort_pipe.sessions["denoiser"].get_inputs()}["sample"] == expected
        assert ort_pipe.sessions["text_encoder"].get_outputs()[0].type == expected
        for name in ("unet", "text_encoder", "vae"):
            assert {p.dtype for p in getattr(pipe, name).parameters()} == {torch.float16}
