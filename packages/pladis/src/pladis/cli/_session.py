"""One loaded pipeline per command: backbone detection, device and dtype, preset, PAG/SEG, generation."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._defaults import EMBEDDED_DEFAULT, with_call_defaults
from ._errors import UsageError, one_line
from ._loading import (
    check_embedded_options,
    check_fit,
    check_preset,
    detect,
    device_for,
    load,
    registry_get,
    to_seg,
)
from ._options import PladisSettings

SEG_LAYERS = "mid"  # --seg-layers' default

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class Session:
    """A pipeline loaded once for a command, with the call kwargs every image of the command uses."""

    pipe: Any
    spec: Any  # pladis_registry.AdapterSpec
    source: str
    embedded: bool
    device: str
    dtype: str
    preset: str | None
    call_kwargs: dict[str, Any]
    guidance: dict[str, Any]
    load_s: float
    adapter: dict[str, str] = field(default_factory=dict)

    def apply(self, settings: PladisSettings) -> Any:
        """Install PLADIS with ``settings`` (replacing earlier settings); None when λ = 0."""
        import pladis

        if not settings.enabled:
            pladis.remove(self.pipe)
            return None
        try:
            return pladis.apply(self.pipe, scale=settings.scale, alpha=settings.alpha,
                                temperature=settings.temperature, layers=settings.layers,
                                backbone=self.spec.name, start=settings.start, end=settings.end,
                                backend=settings.backend)
        except ValueError as error:
            raise UsageError(one_line(error)) from None

    def generate(self, prompt: str, seed: int, progress: Any = None,
                 extra: dict[str, Any] | None = None) -> tuple[Any, float]:
        """One PIL image for ``prompt`` with a CPU generator seeded ``seed``, and the seconds it took."""
        import torch

        kwargs = {**self.call_kwargs, **(extra or {})}
        if progress is not None and "callback_on_step_end" in _call_parameters(type(self.pipe)):
            kwargs["callback_on_step_end"] = progress.on_step
        generator = torch.Generator("cpu").manual_seed(seed)
        start = time.perf_counter()
        image = self.pipe(prompt=prompt, generator=generator, output_type="pil", **kwargs).images[0]
        if self.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if progress is not None:
            progress.advance()
        return image, seconds

    def prompt_truncation(self, prompt: str) -> dict[str, Any] | None:
        """How the pipeline's tokenizer(s) cut ``prompt`` (tokens, limit, tokenizer), or None when whole."""
        for name in ("tokenizer", "tokenizer_2"):
            tokenizer = getattr(self.pipe, name, None)
            if tokenizer is None or not callable(tokenizer):
                continue
            limit = self.call_kwargs.get("max_sequence_length") if name == "tokenizer" else None
            limit = limit or getattr(tokenizer, "model_max_length", None)
            if not isinstance(limit, int) or limit > 100_000:  # "no limit" sentinels
                continue
            try:
                tokens = len(tokenizer(prompt, truncation=False).input_ids)
            except Exception:  # a tokenizer without the plain call: nothing to report
                continue
            if tokens > limit:
                return {"tokens": tokens, "limit": limit, "tokenizer": name}
        return None

    @property
    def steps(self) -> int | None:
        timesteps = self.call_kwargs.get("timesteps")
        return len(timesteps) if timesteps else self.call_kwargs.get("num_inference_steps")

    def describe(self) -> dict[str, Any]:
        """The model and sampling settings, for sidecars."""
        sampling = {key: value for key, value in self.call_kwargs.items() if _jsonable(value)}
        return {
            "model": {"source": self.source, "embedded": self.embedded,
                      "embedded_description": EMBEDDED_DEFAULT.description if self.embedded else None,
                      "backbone": self.spec.name, "adapter": self.adapter,
                      "pipeline_class": type(self.pipe).__name__,
                      "scheduler": type(self.pipe.scheduler).__name__, "preset": self.preset},
            "sampling": sampling,
            "guidance": self.guidance,
            "device": self.device,
            "dtype": self.dtype,
        }

    def caption(self) -> str:
        """A one-line summary of the model and sampling settings for image captions."""
        parts = [f"model {self.source}", f"backbone {self.spec.name}", f"{self.steps} steps",
                 f"CFG {self.call_kwargs.get('guidance_scale', '?')}"]
        parts += [f"{name.split('_')[0].upper()} {value:g}" for name, value in self.guidance.items()
                  if name.endswith("_scale") and value]
        return " · ".join(parts)


def load_session(args: argparse.Namespace) -> Session:
    """Resolve backbone, device, dtype and preset from ``args``, then load the model once."""
    import torch

    import pladis.adapters

    device = device_for(args.device)
    dtype_name = args.dtype or ("fp16" if device == "cuda" else "fp32")
    dtype = getattr(torch, _DTYPES[dtype_name])
    if args.pag_scale and args.seg_scale:
        raise UsageError("--pag-scale and --seg-scale cannot be combined (both use the perturbed batch)")
    if not args.seg_scale and (args.seg_layers is not None or args.seg_blur_sigma is not None):
        raise UsageError("--seg-layers and --seg-blur-sigma set up SEG: they need --seg-scale")
    if args.model is None and args.backbone is None:
        check_embedded_options(args)
    if getattr(args, "out", None) is not None:
        check_out(args.out)
    pag = bool(args.pag_scale)
    registry = pladis.adapters.default_registry()
    info = registry_get(registry, args.backbone) if args.backbone else None

    start = time.perf_counter()
    pipe, info, source, embedded = _load_pipe(args, registry, info, dtype=dtype, pag=pag, device=device)
    load_s = time.perf_counter() - start
    check_call_args(type(pipe), args.call_arg)

    preset_name = args.preset or getattr(pipe, "_pladis_preset", None) or info.spec.default_preset
    call_kwargs = info.spec.preset(preset_name).configure(pipe) if preset_name else {}
    if embedded:
        call_kwargs = with_call_defaults(call_kwargs, EMBEDDED_DEFAULT.call_defaults, bool(args.preset))
        if not args.preset:  # the toy's own defaults replaced the preset's steps and CFG: no preset ran
            preset_name = None
    check_steps(pipe, args.steps)  # against the preset's scheduler
    if args.steps is not None:
        call_kwargs.pop("timesteps", None)  # --steps overrides a preset's explicit timesteps
    guidance = _guidance(args)
    call_kwargs.update(_overrides(args), **{k: v for k, v in guidance.items() if k != "seg_layers"})
    return Session(pipe=pipe, spec=info.spec, source=source, embedded=embedded, device=device,
                   dtype=dtype_name, preset=preset_name, call_kwargs=call_kwargs, guidance=guidance,
                   load_s=load_s, adapter={"distribution": info.distribution, "version": info.version})


def _load_pipe(args: argparse.Namespace, registry: Any, info: Any, *, dtype: Any, pag: bool,
               device: str) -> tuple[Any, Any, str, bool]:
    """The pipeline on ``device`` (SEG's when asked), its adapter, source name and embedded flag."""
    embedded = args.model is None and info is None
    if embedded:
        info = registry_get(registry, EMBEDDED_DEFAULT.backbone)
        check_preset(info.spec, args.preset)
        pipe, source = EMBEDDED_DEFAULT.build(pag=pag), EMBEDDED_DEFAULT.name
        with _quiet_diffusers():
            pipe.to(dtype=dtype)
    else:
        if info is None:
            info = detect(registry, args.model)
        elif args.model is not None:
            check_fit(registry, info.spec, args.model)
        check_preset(info.spec, args.preset)
        pipe = load(info.spec, args.model, dtype=dtype, pag=pag, variant=args.variant, extra=dict(args.load_arg),
                    preset=args.preset)
        source = args.model or str(info.spec.extra.get("default_model", info.spec.name))
    with _quiet_diffusers():  # from_pipe / to() warn about fp32 modules they do not have
        if args.seg_scale:
            pipe = to_seg(pipe, args.seg_layers or SEG_LAYERS)
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, info, source, embedded


def check_out(out: Path) -> None:
    """``--out`` can be created and written, checked before loading (nothing is created here)."""
    path = out.expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {str(out)!r}: cannot write in {str(existing)!r} (permission denied)")


def check_call_args(cls: type, call_args: list[tuple[str, Any]]) -> None:
    """``--call-arg KEY=VALUE``: KEY a parameter of the pipeline's ``__call__`` (its ``**kwargs`` would
    swallow a misspelt name), VALUE of the type of that parameter's default (a number for ``eta``)."""
    defaults = _call_defaults(cls)
    for key, value in call_args:
        if key not in defaults:
            raise UsageError(f"--call-arg {key}: {cls.__name__} takes no argument {key!r}")
        default = defaults[key]
        if default is None or default is inspect.Parameter.empty or value is None:
            continue
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, kind = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise UsageError(f"--call-arg {key}={json.dumps(value)}: {cls.__name__} expects {kind} for {key!r} "
                             f"(default {default!r})")


def check_steps(pipe: Any, steps: int | None) -> None:
    """``--steps`` at most the scheduler's training timesteps (diffusers refuses more)."""
    limit = getattr(getattr(pipe.scheduler, "config", None), "num_train_timesteps", None)
    if steps is not None and isinstance(limit, int) and steps > limit:
        raise UsageError(f"--steps {steps}: {type(pipe.scheduler).__name__} has {limit} training timesteps; "
                         f"use --steps in [1, {limit}]")


@contextlib.contextmanager
def quiet_libraries(quiet: bool) -> Iterator[None]:
    """With ``-q``: no warnings and no loading bars of diffusers, transformers or Python for the duration."""
    if not quiet:
        yield
        return
    import warnings

    from diffusers.utils import logging as diffusers_logging

    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover - transformers is optional for some backbones
        transformers_logging = None
    levels = [(diffusers_logging, diffusers_logging.get_verbosity())]
    if transformers_logging is not None:
        levels.append((transformers_logging, transformers_logging.get_verbosity()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for library, _ in levels:
                library.set_verbosity_error()
                library.disable_progress_bar()
            yield
    finally:
        for library, level in levels:
            library.set_verbosity(level)
            library.enable_progress_bar()


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """diffusers' logging at ERROR level for the duration (its warnings stay on for loading)."""
    from diffusers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _guidance(args: argparse.Namespace) -> dict[str, Any]:
    if args.pag_scale:
        return {"pag_scale": args.pag_scale}
    if args.seg_scale:
        guidance = {"seg_scale": args.seg_scale, "seg_layers": args.seg_layers or SEG_LAYERS}
        if args.seg_blur_sigma is not None:
            guidance["seg_blur_sigma"] = args.seg_blur_sigma
        return guidance
    return {}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.steps is not None:
        kwargs["num_inference_steps"] = args.steps
    if args.guidance_scale is not None:
        kwargs["guidance_scale"] = args.guidance_scale
    for name in ("height", "width", "negative_prompt"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    kwargs.update(dict(args.call_arg))
    return kwargs


def _call_parameters(cls: type) -> set[str]:
    """Named parameters of ``cls.__call__`` and, where one passes ``**kwargs`` on (SEG's to PAG's), of
    the ``__call__`` of the classes it derives from."""
    return set(_call_defaults(cls))


def _call_defaults(cls: type) -> dict[str, Any]:
    """:func:`_call_parameters` with each parameter's default (``inspect.Parameter.empty`` if none)."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        call = klass.__dict__.get("__call__")
        if call is None:
            continue
        parameters = inspect.signature(call).parameters.values()
        for p in parameters:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                found.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return found


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
