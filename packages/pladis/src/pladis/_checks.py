"""Argument checks shared by the public API: each error names the parameter and its allowed range."""

from __future__ import annotations

import math
import numbers

import torch

# Temperatures outside this range overflow or underflow the scaled scores (S/T, (α−1)/T) in float32.
TEMPERATURE_RANGE = (1e-6, 1e6)


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float if it lies in [1, 2], else raise ``ValueError``."""
    value = _as_float(alpha, "alpha")
    if not 1.0 <= value <= 2.0:
        raise ValueError(f"alpha must be in [1, 2] (1 = softmax, 1.5 = entmax15, 2 = sparsemax); got {alpha!r}")
    return value


def check_scale(scale: float) -> float:
    """Return the PLADIS scale λ as a float if it is finite, else raise ``ValueError``."""
    value = _as_float(scale, "scale")
    if not math.isfinite(value):
        raise ValueError(f"scale (λ) must be a finite real number (paper default 2.0); got {scale!r}")
    return value


def check_temperature(temperature: float) -> float:
    """Return the sparse-branch temperature as a float if it lies in ``TEMPERATURE_RANGE``, else raise
    ``ValueError``."""
    value = _as_float(temperature, "temperature")
    low, high = TEMPERATURE_RANGE
    if not low <= value <= high:
        raise ValueError(f"temperature must be in [{low:g}, {high:g}] (default 1.0); got {temperature!r}")
    return value


def _as_float(value: object, name: str) -> float:
    """A Python, NumPy or one-element tensor real number as a float (never a bool)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool and not value.is_complex():
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def batch_shape(*shapes: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(*shapes)``, without its cost (~30 µs a call, per launch on a GPU) when the
    shapes are equal, as they are in every attention layer of a diffusers pipeline."""
    first = shapes[0]
    if all(shape == first for shape in shapes[1:]):
        return torch.Size(first)
    return torch.broadcast_shapes(*shapes)
