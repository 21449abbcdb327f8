"""Each base adapter's load_pipeline reads a saved tiny pipeline back offline (the real loading path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pladis.adapters import default_registry


@pytest.fixture(scope="module", autouse=True)
def _offline():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


@pytest.mark.parametrize("backbone,pag_class", [
    ("sd15", "StableDiffusionPAGPipeline"),
    ("sdxl", "StableDiffusionXLPAGPipeline"),
    ("sana", "SanaPAGPipeline"),
    ("pixart", "PixArtSigmaPAGPipeline"),
])
def test_load_pipeline_from_a_local_folder(tmp_path, backbone, pag_class):
    spec = default_registry().get(backbone).spec
    pipe = spec.tiny(seed=0)
    pipe.save_pretrained(tmp_path)
    loaded = spec.load(str(tmp_path))
    assert type(loaded) is type(pipe)
    kwargs = dict(spec.tiny_call_kwargs)
    images = [np.asarray(p("a cat", generator=torch.Generator().manual_seed(0), **kwargs).images) for p in (pipe, loaded)]
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)
    assert type(spec.load(str(tmp_path), pag=True)).__name__ == pag_class
    half = spec.load(str(tmp_path), torch_dtype=torch.float16, variant="fp16")  # no fp16 files: falls back, casts
    denoiser = getattr(half, "unet", None) or half.transformer
    assert next(denoiser.parameters()).dtype == torch.float16


def test_missing_model_folder_fails_clearly(tmp_path):
    spec = default_registry().get("sd15").spec
    with pytest.raises((OSError, ValueError)):
        spec.load(str(tmp_path / "nowhere"))
