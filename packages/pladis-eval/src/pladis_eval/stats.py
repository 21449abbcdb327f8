"""Means with 95 % confidence intervals and paired differences (images of the same prompt and seed)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

#: Two-sided 95 % quantile of the normal distribution (the intervals are normal approximations).
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A mean, the half-width of its 95 % interval (NaN for fewer than two values) and the count."""

    mean: float
    half_width: float
    n: int

    def format(self, digits: int = 3) -> str:
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci95": self.half_width, "n": self.n}


def mean_ci(values: Sequence[float]) -> Estimate:
    """Mean ± 1.96 standard errors (sample standard deviation, ddof = 1); ValueError when empty."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, float("nan"), n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Estimate(mean, Z95 * math.sqrt(variance / n), n)


def paired_difference(values: Mapping[Hashable, float], baseline: Mapping[Hashable, float]) -> Estimate:
    """Mean ± 95 % CI of ``values[k] − baseline[k]`` over the keys both share (prompt, seed pairs).

    ValueError when they share none.
    """
    keys = [key for key in values if key in baseline]
    if not keys:
        raise ValueError("no image pairs: the two settings share no (prompt, seed)")
    return mean_ci([values[key] - baseline[key] for key in keys])
