"""Repository-wide test setup: one torch thread per test process; the native CPU kernel built into a
fresh cache directory (``PLADIS_CACHE_DIR``), so a run never depends on a library left by another.

The machines running this suite have 2 shared cores; with torch's default 2 threads the tiny-pipeline
tests slow down several-fold whenever another process is busy, and results are identical either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def _fresh_kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("PLADIS_CACHE_DIR")
    os.environ["PLADIS_CACHE_DIR"] = str(tmp_path_factory.mktemp("pladis-kernel-cache"))
    yield
    if previous is None:
        del os.environ["PLADIS_CACHE_DIR"]
    else:
        os.environ["PLADIS_CACHE_DIR"] = previous
