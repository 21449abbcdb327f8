"""Repository-wide test setup: one torch thread per test process.

The machines running this suite have 2 shared cores; with torch's default 2 threads the tiny-pipeline
tests slow down several-fold whenever another process is busy, and results are identical either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
