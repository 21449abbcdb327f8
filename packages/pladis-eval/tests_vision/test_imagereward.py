"""imagereward in this environment: image-reward 1.5 (its latest release) imports names that transformers 5
removed, so it does not import beside the project's transformers; the metric says so and why."""

from __future__ import annotations

import pytest
from pladis_eval import metrics
from pladis_eval.metrics import MetricUnavailable


def test_imagereward_beside_transformers_5_explains_why_it_does_not_import():
    import transformers

    assert int(transformers.__version__.split(".")[0]) >= 5
    with pytest.raises(MetricUnavailable, match=r"metric 'imagereward' needs the package image-reward, which does "
                                                r"not import \(cannot import name .* from 'transformers\..*"
                                                r"written for transformers 4.*transformers < 5"):
        metrics.build("imagereward")
