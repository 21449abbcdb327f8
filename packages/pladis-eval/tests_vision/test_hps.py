"""hps: open_clip with a checkpoint, on a tiny random ViT saved as a local open_clip model folder."""

from __future__ import annotations

import json

import pytest
from pladis_eval import metrics
from pladis_eval.metrics import MetricUnavailable

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def tiny_hps(tmp_path_factory):
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny-hps")
    (folder / "open_clip_config.json").write_text(json.dumps(TINY))
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY)
    torch.save({"state_dict": model.state_dict()}, folder / "tiny.pt")
    return folder


def oracle(folder, images, prompts):
    """100 · cos(image, text) from open_clip's own encoders on the same files, in float64."""
    import open_clip
    import torch

    model = open_clip.CLIP(**TINY)
    model.load_state_dict(torch.load(folder / "tiny.pt", weights_only=True)["state_dict"])
    model.eval()
    preprocess = open_clip.image_transform(TINY["vision_cfg"]["image_size"], is_train=False)
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(i) for i in images])).double()
        text = model.encode_text(open_clip.tokenize(prompts)).double()
    cos = (image * text).sum(-1) / (image.norm(dim=-1) * text.norm(dim=-1))
    return (100 * cos).tolist()


def test_hps_equals_100_cos_of_open_clips_encoders(tiny_hps, images, prompts):
    metric = metrics.build("hps", model=str(tiny_hps))
    scores = metric.score(images, prompts)
    assert len(scores) == len(images)
    assert scores == pytest.approx(oracle(tiny_hps, images, prompts), abs=1e-4)
    assert all(-100 <= s <= 100 for s in scores)


def test_hps_is_deterministic_and_reads_the_prompt(tiny_hps, images, prompts):
    first = metrics.build("hps", model=str(tiny_hps)).score(images, prompts)
    again = metrics.build("hps", model=str(tiny_hps)).score(images, prompts)
    assert first == again
    other = metrics.build("hps", model=str(tiny_hps)).score(images, prompts[::-1])
    assert all(abs(a - b) > 1e-6 for a, b in zip(first, other, strict=True))


def test_hps_default_model_offline_names_the_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: the checkpoint is not on disk
    with pytest.raises(MetricUnavailable, match=r"metric 'hps': cannot load model 'xswu/HPSv2:HPS_v2\.1_compressed\.pt'"
                                                r".*hf download xswu/HPSv2"):
        metrics.build("hps")
