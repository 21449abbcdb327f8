"""The generic fallback meets the adapter contract on a tiny UNet pipeline it is not specific to."""

import pytest

pytest.importorskip("diffusers")
sd15 = pytest.importorskip("pladis_adapter_sd15")

from pladis_adapter_generic import SPEC  # noqa: E402
from pladis_registry.testing import check_adapter  # noqa: E402


def test_adapter_contract_on_a_unet() -> None:
    # groups are the denoiser's top-level children; block indices come from "<child>.<i>."
    check_adapter(SPEC, tiny=sd15.tiny_pipeline, call_kwargs=sd15.SPEC.tiny_call_kwargs)
