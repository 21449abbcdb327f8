"""fid with torch-fidelity's Inception-v3 (torchmetrics), on random weights saved as a local file."""

from __future__ import annotations

import numpy as np
import pytest
from pladis_eval import metrics
from pladis_eval.metrics import MetricUnavailable


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A state dict of FeatureExtractorInceptionV3's shape with seeded random weights."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):  # its __init__ loads weights: skip that once, here
        def load_state_dict(self, *args, **kwargs):
            return None

    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    state = Unloaded("inception-v3-compat", ["2048"], str(folder / "empty.pth")).state_dict()
    torch.save(state, folder / "inception.pth")
    return folder / "inception.pth"


@pytest.fixture(scope="module")
def sets(images):
    from PIL import Image

    rng = np.random.default_rng(1)
    other = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(4)]
    return images[:4], other


def frechet_reference(weights, a, b):
    """The Fréchet distance in float64 from the same extractor's features (scipy's sqrtm). The covariances
    have rank < N, so tr sqrtm(S_a S_b) is taken as tr sqrtm(M Mᵀ) with M = A Bᵀ / √((n-1)(m-1)) (A, B
    the centred features): both products have the same non-zero eigenvalues."""
    import torch
    from scipy.linalg import sqrtm
    from torchmetrics.image.fid import NoTrainInceptionV3

    net = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(weights))
    with torch.no_grad():
        fa, fb = (net(metrics.to_uint8_tensor(s)).double().numpy() for s in (a, b))
    ca, cb = fa - fa.mean(0), fb - fb.mean(0)
    m = ca @ cb.T / np.sqrt((len(fa) - 1) * (len(fb) - 1))
    cross = np.trace(sqrtm(m @ m.T)).real
    trace_a = (ca ** 2).sum() / (len(fa) - 1)
    trace_b = (cb ** 2).sum() / (len(fb) - 1)
    return float(((fa.mean(0) - fb.mean(0)) ** 2).sum() + trace_a + trace_b - 2 * cross)


@pytest.fixture(scope="module")
def distances(inception_weights, sets):
    """One metric, three calls (each a 2048-wide eigendecomposition, the slow part)."""
    fid = metrics.build("fid", model=str(inception_weights))
    a, b = sets
    return fid, {"ab": fid.distance(a, b), "ba": fid.distance(b, a), "aa": fid.distance(a, a)}


def test_fid_equals_the_frechet_distance_of_the_inception_features(inception_weights, sets, distances):
    fid, d = distances
    assert fid.model == str(inception_weights)
    reference = frechet_reference(inception_weights, *sets)
    assert reference > 0
    assert d["ab"] == pytest.approx(reference, rel=1e-3)
    assert d["ba"] == pytest.approx(reference, rel=1e-3)  # symmetric


def test_fid_of_a_set_against_itself_is_zero(distances):
    _, d = distances
    assert abs(d["aa"]) < 1e-3 * d["ab"]  # and the state was reset between the calls


def test_fid_with_a_missing_weights_file_says_what_it_wants(tmp_path):
    with pytest.raises(MetricUnavailable, match=r"--metric-model fid=.*no-such\.pth: no such file"):
        metrics.build("fid", model=str(tmp_path / "no-such.pth"))


def test_fid_offline_without_weights_names_the_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # offline: every connection is refused
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(MetricUnavailable, match=r"cannot load the Inception-v3 weights.*weights-inception-2015-12-05"
                                                r".*--metric-model fid=FILE"):
        metrics.build("fid")
