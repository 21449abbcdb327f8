"""Disjoint shares of a job list per process under 🤗 Accelerate, and one gather of the results.

``accelerate launch --num_processes N … pladis benchmark …``: process ``r`` of ``N`` takes the jobs
``r, r + N, r + 2N, …`` of the ordered prompt × seed × setting grid, so the shares are disjoint and
their union is the grid; the same command runs as one process without Accelerate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Shard:
    """This process's index and the number of processes, with Accelerate's state when distributed."""

    index: int
    count: int
    state: Any = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def take(self, jobs: Sequence[T]) -> list[T]:
        """This process's share: every ``count``-th job from ``index`` (disjoint; union = ``jobs``)."""
        return list(jobs[self.index::self.count])

    def gather(self, items: list[Any]) -> list[Any]:
        """All processes' ``items``, concatenated in process order (on every process)."""
        if self.count == 1:
            return list(items)
        from accelerate.utils import gather_object

        return list(gather_object(items))

    def wait(self) -> None:
        if self.state is not None and self.count > 1:
            self.state.wait_for_everyone()

    @property
    def device(self) -> str | None:
        """Accelerate's device for this process (None when not distributed)."""
        if self.state is None:
            return None
        return str(self.state.device.type)


def single_process() -> Shard:
    return Shard(0, 1)


def current() -> Shard:
    """The shard of this process: Accelerate's when launched by ``accelerate launch`` (or torchrun),
    else a single process. Without CUDA the processes join over gloo (Accelerate's multi-CPU mode)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return single_process()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(state.process_index, state.num_processes, state)
