"""The shipped toy model (models/toy): loads offline as a StableDiffusionPipeline and generates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from toy import MODEL_DIR as TOY_MODEL
from toy import data, scorer
from toy.vae import identity_vae

pytestmark = pytest.mark.skipif(not (TOY_MODEL / "model_index.json").exists(), reason="models/toy not present")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(TOY_MODEL, local_files_only=True)
    p.set_progress_bar_config(disable=True)
    return p


def test_folder_is_small_and_safetensors_only():
    files = [f for f in TOY_MODEL.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20
    weights = [f for f in files if f.suffix in {".bin", ".safetensors", ".pt", ".ckpt", ".pth"}]
    assert weights and all(f.suffix == ".safetensors" for f in weights)
    index = json.loads((TOY_MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"


def test_generates_a_one_step_image(pipe):
    out = pipe("a red circle", num_inference_steps=1, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, data.SIZE, data.SIZE, 3) and np.isfinite(out).all()
    image = (out[0] * 255).round().astype(np.uint8)
    assert 0.0 <= scorer.score(image, "a red circle")["overall"] <= 1.0


def test_pladis_applies_to_the_shipped_model(pipe):
    import pladis

    kwargs = dict(num_inference_steps=2, output_type="np", guidance_scale=1.0)
    base = pipe("a blue square", generator=torch.Generator().manual_seed(0), **kwargs).images
    handle = pladis.apply(pipe, scale=2.0, alpha=1.5)
    try:
        assert handle.adapter.name == "sd15" and len(handle.modules) == 4  # cross-attention in down (1), mid (1), up (2)
        on = pipe("a blue square", generator=torch.Generator().manual_seed(0), **kwargs).images
    finally:
        pladis.remove(pipe)
    again = pipe("a blue square", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert not np.allclose(base, on) and np.allclose(base, again)


def test_the_vae_is_the_identity():
    vae = identity_vae()
    x = torch.rand(2, 3, data.SIZE, data.SIZE) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(vae.encode(x).latent_dist.mean, x, atol=1e-3)
        assert torch.allclose(vae.decode(x).sample, x, atol=1e-3)
    assert vae.config.scaling_factor == 1.0 and len(vae.config.block_out_channels) == 1
