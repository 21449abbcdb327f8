"""Offline fixtures of the torchvision environment (``make test-vision``): tiny randomly initialised models
of the real classes (open_clip, ImageReward's BLIP, torch-fidelity's Inception-v3) saved as local files."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in these tests may reach the hub

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def images():
    """Six 40 px RGB images of random 8 px blocks."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(np.kron(rng.integers(0, 256, (5, 5, 3)), np.ones((8, 8, 1))).astype(np.uint8))
            for _ in range(6)]


@pytest.fixture(scope="session")
def prompts():
    return ["a red circle", "a blue square", "two yellow circles", "a green square above a cat",
            "a photo of a dog", "three blue triangles"]
