"""Finding the adapter for a pipeline: the default registry, auto-detection and ``list_adapters``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pladis_registry import AdapterInfo, AdapterSpec, Registry

__all__ = ["AdapterSummary", "default_registry", "find_denoiser", "list_adapters", "resolve_adapter"]


@dataclass(frozen=True)
class AdapterSummary:
    """One discovered adapter, as ``pladis.list_adapters()`` reports it."""

    name: str
    distribution: str
    version: str
    description: str
    presets: tuple[str, ...]


@functools.cache
def default_registry() -> Registry:
    """The process-wide registry, built on first use (``default_registry.cache_clear()`` resets it)."""
    return Registry()


def list_adapters(registry: Registry | None = None) -> list[AdapterSummary]:
    """The discovered adapters (name, distribution, version, description, presets), by name."""
    registry = registry or default_registry()
    return [
        AdapterSummary(
            name=info.name,
            distribution=info.distribution,
            version=info.version,
            description=info.spec.description,
            presets=tuple(info.spec.presets),
        )
        for info in sorted(registry.adapters().values(), key=lambda i: i.name)
    ]


def find_denoiser(pipe_or_denoiser: Any) -> Any:
    """The denoiser of a pipeline (``unet`` or ``transformer``), or the object itself if it is one; for a
    ``torch.compile``-d denoiser, the module it wraps (whose layer names and ``forward`` are the model's)."""
    import torch

    candidates = [pipe_or_denoiser] + [getattr(pipe_or_denoiser, attr, None) for attr in ("unet", "transformer")]
    for model in candidates:
        if isinstance(model, torch.nn.Module):
            inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
            return inner if isinstance(inner, torch.nn.Module) else model
    raise ValueError(
        f"pipe_or_denoiser must be a diffusers pipeline with a `unet` or `transformer`, or such a model; "
        f"got {type(pipe_or_denoiser).__name__}"
    )


def resolve_adapter(
    pipe_or_denoiser: Any, denoiser: Any, backbone: str | None, registry: Registry | None = None
) -> AdapterSpec:
    """The adapter named ``backbone`` (checked against the pipeline) or the best auto-detected one."""
    import torch

    registry = registry or default_registry()
    adapters = registry.adapters()
    pipe = None if isinstance(pipe_or_denoiser, torch.nn.Module) else pipe_or_denoiser
    if backbone is not None:
        spec = registry.get(backbone).spec
        if not (spec.generic or _class_match(spec, pipe, denoiser)):
            raise ValueError(
                f"backbone {backbone!r} does not fit a {type(denoiser).__name__}"
                f"{'' if pipe is None else ' in a ' + type(pipe).__name__}; it serves "
                f"{list(spec.pipeline_classes + spec.denoiser_classes)}. "
                f"Matching backbones: {sorted(_matching_names(adapters, pipe, denoiser)) or 'none'}"
            )
        return spec
    candidates = [info for info in adapters.values() if _class_match(info.spec, pipe, denoiser)]
    if not candidates:
        candidates = [info for info in adapters.values() if info.spec.generic]
    if not candidates:
        raise ValueError(
            f"no adapter matches {type(pipe_or_denoiser).__name__}; installed backbones: "
            f"{sorted(adapters) or 'none'} (pip install 'pladis[all]' or pass backbone=)"
        )
    model_id = _model_id(pipe, denoiser)
    return max(candidates, key=lambda info: _rank(info, model_id)).spec


def _rank(info: AdapterInfo, model_id: str) -> tuple[int, int, int, str]:
    spec = info.spec
    id_hit = any(re.search(p, model_id, flags=re.IGNORECASE) for p in spec.model_id_patterns)
    # adapters that only ever match by model id must not win a class match without one
    id_only = bool(spec.model_id_patterns) and not id_hit
    return (int(id_hit), int(not id_only), spec.priority, spec.name)


def _matching_names(adapters: dict[str, AdapterInfo], pipe: Any, denoiser: Any) -> list[str]:
    return [name for name, info in adapters.items() if _class_match(info.spec, pipe, denoiser)]


def _class_match(spec: AdapterSpec, pipe: Any, denoiser: Any) -> bool:
    if spec.generic:
        return False
    if pipe is not None and _mro_names(pipe) & set(spec.pipeline_classes):
        return True
    if not _mro_names(denoiser) & set(spec.denoiser_classes):
        return False
    config = getattr(denoiser, "config", {})
    return all(config.get(key) == value for key, value in spec.denoiser_config.items())


def _mro_names(obj: Any) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def _model_id(pipe: Any, denoiser: Any) -> str:
    ids = [getattr(pipe, "name_or_path", None)]
    config = getattr(denoiser, "config", None)
    ids.append(getattr(config, "_name_or_path", None) if config is not None else None)
    ids.append(getattr(pipe, "_pladis_model_id", None))
    return " ".join(str(i) for i in ids if i)
