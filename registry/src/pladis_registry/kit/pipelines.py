"""``pipeline_loader``: an adapter's ``load`` function written as data (pipeline class names, default model).

An adapter's loader takes ``(model=None, *, variant=None, torch_dtype=None, pag=False, **kwargs)`` -- the
call the CLI makes -- and loads a hub id or local folder with :func:`.loading.load_pretrained`
(safetensors first; an fp16 ``variant`` falls back to the default weights when the files are missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["pipeline_loader"]


def pipeline_loader(pipeline: str, default_model: str, *, pag_pipeline: str | None = None,
                    **defaults: Any) -> Callable[..., Any]:
    """A ``load_pipeline`` function for ``diffusers.<pipeline>`` (``diffusers.<pag_pipeline>`` with
    ``pag=True``), ``default_model`` when no model is given, ``defaults`` as keyword defaults of
    ``from_pretrained`` (e.g. ``safety_checker=None``)."""

    def load_pipeline(model: str | os.PathLike[str] | None = None, *, variant: str | None = None,
                      torch_dtype: Any = None, pag: bool = False, **kwargs: Any) -> Any:
        import diffusers

        from .loading import load_pretrained

        if pag and pag_pipeline is None:
            raise ValueError(f"pag=True: {pipeline} has no PAG pipeline in this adapter")
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
        cls = getattr(diffusers, pag_pipeline if pag else pipeline)
        return load_pretrained(cls, model or default_model, variant=variant, torch_dtype=torch_dtype, **kwargs)

    load_pipeline.__doc__ = (f"Load a ``{pipeline}`` (``{pag_pipeline}`` if ``pag``) from a hub id or local folder "
                             f"(default ``{default_model}``), safetensors first.")
    return load_pipeline
