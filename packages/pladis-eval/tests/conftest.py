"""Offline fixtures: tiny randomly initialised CLIP models saved as local folders; one torch thread."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may reach the hub

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models run faster on one thread on a shared machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def toy_tokenizer_dir():
    from pladis.cli._defaults import toy_model_dir

    return toy_model_dir() / "tokenizer"


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory, toy_tokenizer_dir):
    """A CLIPModel (2 layers, 32 wide, 30 px images) with its processor, saved as a model folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(toy_tokenizer_dir))
    config = CLIPConfig(
        text_config={"vocab_size": tokenizer.vocab_size, "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 77,
                     # the pooled text feature sits at the end-of-text token: the tokenizer's ids
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 30, "patch_size": 10},
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 30},
                                                                 crop_size={"height": 30, "width": 30}),
                              tokenizer=tokenizer)
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_images():
    """Eight 16 px images of the toy grammar with their prompts (drawn by tools/toy/data.py)."""
    import numpy as np
    from PIL import Image
    from pladis_eval.metrics import toy_scorer

    toy_scorer()
    from toy import data

    rng = np.random.default_rng(0)
    prompts = ["a red circle", "a blue square to the left of a green triangle", "two yellow circles",
               "a green square", "a red triangle above a blue circle", "three blue squares", "a yellow square",
               "a red circle and a green square"]
    return [Image.fromarray(data.render(data.parse(p), rng)) for p in prompts], prompts
