"""Argument checks shared by the public API, and the one settings object carried through it.

Each error names the parameter and its allowed range. :class:`PLADISSettings` is validated once, where a
public function receives its arguments (``apply``, ``pladis_attention``, ``PLADISAttnProcessor``), and
then passed on: the processors, the attention and the back-ends trust it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import torch

__all__ = [
    "ALPHA_SOFTMAX_GAP",
    "BACKENDS",
    "PLADISSettings",
    "PLADISWarning",
    "TEMPERATURE_RANGE",
    "as_real",
    "check_alpha",
    "check_backend",
    "check_scale",
    "check_temperature",
    "warn",
]

BACKENDS = ("auto", "eager", "compile", "triton", "native")
# Temperatures outside this range overflow or underflow the scaled scores (S/T, (α−1)/T) in float32.
TEMPERATURE_RANGE = (1e-6, 1e6)
# α in (1, 1 + gap) is refused: the threshold solver works on k = 1/(α−1) > 100 powers there, which lose
# fp32 accuracy, while softmax (α = 1) is not yet within fp32 resolution of α-entmax (docs/kernels.md).
ALPHA_SOFTMAX_GAP = 1e-2


@dataclass(frozen=True)
class PLADISSettings:
    """λ (``scale``), α, the sparse-branch temperature and the back-end of Eq. 15, validated on creation.

    ``scale`` is λ (any finite real; paper default 2.0), ``alpha`` is 1 (softmax) or in [1.01, 2]
    (1.5 = entmax15, 2 = sparsemax), ``temperature`` in [1e-6, 1e6] divides the sparse logits, and
    ``backend`` is one of :data:`BACKENDS`.
    """

    scale: float = 2.0
    alpha: float = 1.5
    temperature: float = 1.0
    backend: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_scale(self.scale))
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        object.__setattr__(self, "temperature", check_temperature(self.temperature))
        object.__setattr__(self, "backend", check_backend(self.backend))

    def __repr__(self) -> str:
        return f"λ={self.scale:g}, α={self.alpha:g}, T={self.temperature:g}, backend={self.backend!r}"


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float if it is 1 or lies in [1 + ``ALPHA_SOFTMAX_GAP``, 2], else raise
    ``ValueError``."""
    value = as_real(alpha, "alpha")
    if not (value == 1.0 or 1.0 + ALPHA_SOFTMAX_GAP <= value <= 2.0):
        raise ValueError(
            f"alpha must be 1 (softmax) or in [{1.0 + ALPHA_SOFTMAX_GAP:g}, 2] (1.5 = entmax15, 2 = sparsemax); "
            f"got {alpha!r}"
        )
    return value


def check_scale(scale: float) -> float:
    """Return the PLADIS scale λ as a float if it is finite, else raise ``ValueError``."""
    value = as_real(scale, "scale")
    if not math.isfinite(value):
        raise ValueError(f"scale (λ) must be a finite real number (paper default 2.0); got {scale!r}")
    return value


def check_temperature(temperature: float) -> float:
    """Return the sparse-branch temperature as a float if it lies in ``TEMPERATURE_RANGE``, else raise
    ``ValueError``."""
    value = as_real(temperature, "temperature")
    low, high = TEMPERATURE_RANGE
    if not low <= value <= high:
        raise ValueError(f"temperature must be in [{low:g}, {high:g}] (default 1.0); got {temperature!r}")
    return value


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else ``ValueError``."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return backend


def as_real(value: object, name: str) -> float:
    """A Python, NumPy or one-element tensor real number as a float (never a bool); ``ValueError`` naming
    ``name`` otherwise, also for numbers beyond float range (10**400)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool and not value.is_complex():
        if value.device.type == "meta":
            raise ValueError(f"{name} must be a real number; got a tensor on the meta device")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a real number within float range; got {value!r}") from None


class PLADISWarning(RuntimeWarning):
    """A warning of pladis's own, shown as one ``pladis: ...`` line (no source line)."""


def warn(message: str, stacklevel: int = 2) -> None:
    """Warn with :class:`PLADISWarning`: ``message`` (starting "pladis: ") printed as one line."""
    warnings.warn(message, PLADISWarning, stacklevel=stacklevel + 1)


def _one_line_format(previous):
    def formatwarning(message, category, filename, lineno, line=None):
        if isinstance(category, type) and issubclass(category, PLADISWarning):
            return f"{message}\n"
        return previous(message, category, filename, lineno, line)

    formatwarning._pladis = True
    return formatwarning


if not getattr(warnings.formatwarning, "_pladis", False):
    warnings.formatwarning = _one_line_format(warnings.formatwarning)


def batch_shape(*shapes: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(*shapes)``, without its cost (paid per launch on a GPU: docs/kernels.md)
    when the shapes are equal, as they are in every attention layer of a diffusers pipeline."""
    first = shapes[0]
    if all(shape == first for shape in shapes[1:]):
        return torch.Size(first)
    return torch.broadcast_shapes(*shapes)
