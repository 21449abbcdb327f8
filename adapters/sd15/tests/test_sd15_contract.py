"""The sd15 adapter meets the adapter contract on its tiny pipeline (every preset, groups, remove)."""

import pytest

pytest.importorskip("diffusers")

from pladis_adapter_sd15 import SPEC  # noqa: E402
from pladis_registry.testing import check_adapter  # noqa: E402


def test_adapter_contract() -> None:
    check_adapter(SPEC)
