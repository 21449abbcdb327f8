"""Metrics on tiny random models of the real classes, checked against the models' own features."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from PIL import Image
from pladis_eval import metrics
from pladis_eval.metrics import MetricUnavailable


def _features(folder, images, prompts):
    """Normalised image and text embeddings straight from transformers' CLIPModel (the oracle)."""
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    with torch.no_grad():
        inputs = processor(images=images, text=prompts, padding=True, return_tensors="pt")
        out = model(**inputs)
    image = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    text = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    return model, image.double(), text.double()


def test_clipscore_is_100_times_the_clipped_cosine(tiny_clip_dir, toy_images):
    images, prompts = toy_images
    metric = metrics.build("clipscore", model=str(tiny_clip_dir))
    scores = metric.score(images, prompts)
    _, image, text = _features(tiny_clip_dir, images, prompts)
    expected = (100 * (image * text).sum(-1)).clamp(min=0).tolist()
    assert len(scores) == len(images)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)
    assert metric.score(images, prompts) == scores  # deterministic


def test_pickscore_is_the_scaled_cosine_of_each_pair(tiny_clip_dir, toy_images):
    images, prompts = toy_images
    metric = metrics.build("pickscore", model=str(tiny_clip_dir))
    scores = metric.score(images, prompts)
    model, image, text = _features(tiny_clip_dir, images, prompts)
    expected = (model.logit_scale.exp().double() * (image * text).sum(-1)).tolist()
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    shuffled = metric.score(images, prompts[1:] + prompts[:1])  # each image paired with its own prompt
    assert shuffled != scores


def test_batches_do_not_change_scores(tiny_clip_dir, toy_images, monkeypatch):
    images, prompts = toy_images
    metric = metrics.build("pickscore", model=str(tiny_clip_dir))
    whole = metric.score(images, prompts)
    monkeypatch.setattr(metrics, "BATCH", 3)
    np.testing.assert_allclose(metric.score(images, prompts), whole, rtol=1e-5, atol=1e-5)


def test_toy_alignment_is_the_toy_scorer_in_percent(toy_images):
    images, prompts = toy_images
    from toy import scorer

    got = metrics.build("toy-alignment").score(images, prompts)
    assert got == [100 * scorer.score(np.asarray(im), p)["overall"] for im, p in zip(images, prompts, strict=True)]
    assert got[0] == 100.0  # a clean rendering of "a red circle" satisfies every check


def test_score_needs_one_prompt_per_image(toy_images):
    images, prompts = toy_images
    with pytest.raises(ValueError, match="8 images but 7 prompts"):
        metrics.build("toy-alignment").score(images, prompts[:7])


def test_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match="unknown metric 'clip'.*clipscore, pickscore"):
        metrics.build("clip")
    with pytest.raises(ValueError, match="unknown metric nope"):
        metrics.parse_metric_names("clipscore,nope")
    assert metrics.parse_metric_names("fid, clipscore,fid") == ["fid", "clipscore"]


def test_missing_model_names_the_id_and_how_to_download():
    with pytest.raises(MetricUnavailable, match=r"cannot load model 'nobody/no-such-clip'.*hf download "
                                                r"nobody/no-such-clip.*--metric-model clipscore=LOCAL_DIR"):
        metrics.build("clipscore", model="nobody/no-such-clip")


@pytest.mark.parametrize(("name", "package", "extra"), [("hps", "open-clip-torch", "hps"),
                                                       ("imagereward", "image-reward", "imagereward")])
def test_missing_package_names_it_and_the_extra(name, package, extra, monkeypatch):
    real = importlib.import_module

    def absent(module, *args):
        if module in ("open_clip", "ImageReward"):
            raise ModuleNotFoundError(f"No module named {module!r}")
        return real(module, *args)

    monkeypatch.setattr(importlib, "import_module", absent)
    with pytest.raises(MetricUnavailable, match=rf"needs the package {package}, which is not installed.*"
                                                rf'pip install "pladis-eval\[{extra},vision\]" \(its torchvision '
                                                rf"imports beside torch 2\.14\.1.*`make install-vision`"):
        metrics.build(name)


def test_an_imagereward_folder_without_its_config_is_refused(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(MetricUnavailable, match=r"the folder .* needs a checkpoint \*\.pt and its med_config\.json"):
        metrics.build("imagereward", model=str(tmp_path))


def test_a_torchvision_that_does_not_import_is_explained(monkeypatch):
    def broken(module, *args):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(MetricUnavailable, match=r"open-clip-torch, which does not import \(operator torchvision::nms "
                                                r"does not exist\); PyPI's torchvision wheels are CUDA builds"):
        metrics.build("hps")


def test_fid_without_torch_fidelity_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch_fidelity" else object())
    with pytest.raises(MetricUnavailable, match=r"torch-fidelity.*needs torchvision.*pladis-eval\[fid-inception,vision\]"
                                                r".*torch 2\.14\.1.*`make install-vision`"):
        metrics.build("fid")


# --- FID: torchmetrics' statistics on features with closed-form distances -------------------------------


class ChannelMeans(torch.nn.Module):
    """Features = each image's mean colour (3 numbers): a constant-colour image *is* its feature vector."""

    def forward(self, images):
        return images.double().mean(dim=(2, 3))


class TinyInception(torch.nn.Module):
    """An Inception-shaped extractor: convolution stem, pooling, a 2048-d pool feature."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(128, 2048))

    def forward(self, images):
        return self.stem(images.float() / 255)


def _flat(colours):
    return [Image.new("RGB", (4, 4), tuple(int(c) for c in colour)) for colour in colours]


@pytest.fixture(scope="module")
def colours():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(100, 12, size=(300, 3)).round(), 50, 150).astype(int)


def test_fid_of_identical_sets_is_zero(colours):
    fid = metrics.fid_with_features(ChannelMeans())
    assert abs(fid.distance(_flat(colours), _flat(colours))) < 1e-6


def test_fid_of_shifted_gaussian_features_is_the_squared_shift(colours):
    shift = np.array([10, 20, -5])  # same covariance: the trace term vanishes, FID = |Δμ|²
    fid = metrics.fid_with_features(ChannelMeans()).distance(_flat(colours + shift), _flat(colours))
    assert fid == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fid_of_scaled_gaussian_features_is_the_analytic_distance(colours):
    # B = 2A + k: cov_B = 4 cov_A (they commute), so FID = |μ_B − μ_A|² + tr(cov_A + 4 cov_A − 2·2 cov_A)
    a, b = colours, 2 * colours + np.array([-100, -90, -95])  # stays within 0..255
    cov_a = np.cov(a.T.astype(float))
    delta = b.mean(0) - a.mean(0)
    expected = float(delta @ delta + np.trace(cov_a))
    fid = metrics.fid_with_features(ChannelMeans()).distance(_flat(b), _flat(a))
    assert fid == pytest.approx(expected, rel=1e-6)


def test_fid_with_an_inception_shaped_extractor_is_deterministic(toy_images):
    images, _ = toy_images
    fid = metrics.fid_with_features(TinyInception())
    first = fid.distance(images[:4], images[4:])
    assert first > 0 and fid.distance(images[:4], images[4:]) == pytest.approx(first, rel=1e-9)
    assert fid.higher_is_better is False and not fid.per_image
