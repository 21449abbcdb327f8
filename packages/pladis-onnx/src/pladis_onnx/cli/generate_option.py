"""``pladis generate --onnx DIR``: the same prompts, outputs and sidecars as the PyTorch path, with the
networks of a ``pladis export-onnx`` folder running in ONNX Runtime. Registered as options of
``generate`` through the ``pladis_register_generate_options`` hook (:mod:`pladis_onnx.cli`)."""

from __future__ import annotations

import argparse
import inspect
import json
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pladis.cli import _options
from pladis.cli._defaults import with_call_defaults
from pladis.cli._errors import CLIError, UsageError, one_line
from pladis.cli._output import Run, stem

INSTALL_HINT = 'pip install "pladis[onnx]"'
#: pladis_onnx.export.METADATA_FILE, spelt out so that the CLI plugin does not import the exporter.
METADATA_FILE = "pladis_onnx.json"
PROVIDERS = ("auto", "cpu", "cuda")
#: Record the CLI adds to the export's ``pladis_onnx.json`` (source model, adapter, call defaults, …).
CLI_KEY = "cli"
#: Options of the PyTorch path that an ONNX export cannot honour: (dest, value meaning "not given", flag).
_TORCH_ONLY = (("model", None, "--model"), ("backbone", None, "--backbone"), ("variant", None, "--variant"),
               ("load_arg", [], "--load-arg"), ("device", None, "--device"), ("dtype", None, "--dtype"),
               ("pag_scale", 0.0, "--pag-scale"), ("seg_scale", 0.0, "--seg-scale"),
               ("seg_blur_sigma", None, "--seg-blur-sigma"), ("seg_layers", None, "--seg-layers"),
               ("backend", "auto", "--backend"), ("layers", "all", "--layers"),
               ("start", 0.0, "--start"), ("end", 1.0, "--end"))


def require() -> Any:
    """The ``pladis_onnx`` module, or a one-line runtime error naming the extra to install."""
    try:
        import pladis_onnx
    except ImportError as error:
        raise CLIError(f"ONNX support is not installed ({one_line(error)}); install it with: {INSTALL_HINT}") from None
    return pladis_onnx


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(f"ONNX Runtime (needs {INSTALL_HINT})")
    group.add_argument("--onnx", type=Path, metavar="DIR",
                       help="run the folder written by `pladis export-onnx` in ONNX Runtime instead of PyTorch "
                            "(λ is a graph input; α and the temperature are fixed at export)")
    group.add_argument("--provider", choices=PROVIDERS,
                       help="ONNX Runtime execution provider with --onnx (default: auto = CUDA when available)")


def run(args: argparse.Namespace, prompts: list[str]) -> int | None:
    """The ``generate`` hook: run ``--onnx DIR`` here; without it, let the PyTorch path go on."""
    if args.onnx is not None:
        return generate(args, prompts)
    check_unused(args)
    return None


def check_unused(args: argparse.Namespace) -> None:
    if args.provider is not None:
        raise UsageError("--provider selects the ONNX Runtime provider; it needs --onnx DIR")


@dataclass
class OnnxSession:
    """An :class:`pladis_onnx.OnnxPipeline` opened once, with the call kwargs of every image."""

    pipe: Any
    directory: Path
    requested: str
    preset: str | None
    scheduler: str
    call_kwargs: dict[str, Any]
    load_s: float

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.pipe.meta.get(CLI_KEY) or {})

    def generate(self, prompt: str, seed: int, scale: float) -> tuple[Any, float]:
        """One PIL image at λ = ``scale`` with a CPU generator seeded ``seed``, and the seconds it took."""
        import torch

        generator = torch.Generator("cpu").manual_seed(seed)
        start = time.perf_counter()
        image = self.pipe(prompt, scale=scale, preset=self.preset, generator=generator, output_type="pil",
                          **self.call_kwargs).images[0]
        return image, time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        """Model, sampling and ONNX Runtime settings, for sidecars (the PyTorch path's keys plus ``onnx``)."""
        meta, record = self.pipe.meta, self.record
        sampling = {key: value for key, value in self.call_kwargs.items() if _jsonable(value)}
        providers = self.pipe.sessions["denoiser"].get_providers()
        return {
            "model": {"source": record.get("source", str(self.directory)), "embedded": record.get("embedded", False),
                      "embedded_description": record.get("embedded_description"), "backbone": meta["backbone"],
                      "adapter": record.get("adapter", {}), "pipeline_class": meta["pipeline_class"],
                      "scheduler": self.scheduler, "preset": self.preset},
            "sampling": sampling,
            "guidance": {},
            "device": "cuda" if self.pipe.provider == "CUDAExecutionProvider" else "cpu",
            "dtype": "fp16" if meta.get("fp16") else "fp32",
            "onnx": {"dir": str(self.directory), "provider": self.pipe.provider, "providers": providers,
                     "requested_provider": self.requested, "opset": meta.get("opset"), "fp16": meta.get("fp16"),
                     "alpha": meta.get("alpha"), "temperature": meta.get("temperature"),
                     "static_scale": meta.get("static_scale"), "format_version": meta.get("format_version"),
                     "versions": _onnx_versions()},
        }


def generate(args: argparse.Namespace, prompts: list[str]) -> int:
    """``pladis generate --onnx DIR``: one PNG and JSON sidecar per prompt, as the PyTorch path."""
    for dest, unset, flag in _TORCH_ONLY:
        if getattr(args, dest, unset) != unset:
            raise UsageError(f"{flag} is not available with --onnx (the export fixes the model and its PLADIS layers)")
    pladis_onnx = require()
    session = open_session(args, pladis_onnx)
    settings = _settings(args, session.pipe.meta)
    run_ = Run(args, "generate", len(prompts))
    layers = int(session.record.get("pladis_layers", 0)) if settings.enabled else 0
    for index, prompt in enumerate(prompts):
        try:
            image, seconds = session.generate(prompt, args.seed, settings.scale)
        except ValueError as error:
            raise UsageError(one_line(error)) from None
        run_.progress.advance()
        record = run_.sidecar(session, prompt=prompt, seed=args.seed, pladis=settings.as_dict(),
                              pladis_layers=layers, timings={"generate_s": round(seconds, 4)})
        run_.save(image, stem(index, prompt), record)
    return run_.finish()


def open_session(args: argparse.Namespace, pladis_onnx: Any) -> OnnxSession:
    """Open ``args.onnx`` with ``args.provider``; resolve the preset and call kwargs (one-line errors)."""
    directory, requested = args.onnx, args.provider or "auto"
    if not directory.is_dir():
        raise UsageError(f"--onnx folder {str(directory)!r} does not exist (write one with pladis export-onnx)")
    if not (directory / METADATA_FILE).is_file():
        raise UsageError(f"--onnx {str(directory)!r} is not a pladis export-onnx folder: it has no {METADATA_FILE}")
    start = time.perf_counter()
    try:
        pipe = pladis_onnx.OnnxPipeline.from_dir(directory, provider=requested)
    except (FileNotFoundError, RuntimeError) as error:
        raise CLIError(one_line(error)) from None
    except (KeyError, ValueError, OSError) as error:
        raise CLIError(f"{str(directory)!r} is not a readable pladis-onnx export: {one_line(error)}") from None
    except Exception as error:  # onnxruntime's own load failures (corrupt or foreign graph files)
        raise CLIError(f"cannot load the ONNX export {str(directory)!r}: {one_line(error)}") from None
    load_s = time.perf_counter() - start
    try:
        spec = _spec(pipe.meta["backbone"])
        if args.preset is not None and args.preset not in spec.presets:
            raise UsageError(f"unknown preset {args.preset!r} for backbone {spec.name!r}; "
                             f"choose one of {sorted(spec.presets)}")
        preset = pipe.resolve_preset(args.preset) or spec.default_preset
        scheduler = type(pipe.make_scheduler(preset)).__name__
        kwargs = pipe.preset_kwargs(preset)
    except ValueError as error:
        raise CLIError(f"cannot use the ONNX export {str(directory)!r}: {one_line(error)}") from None
    defaults = (pipe.meta.get(CLI_KEY) or {}).get("call_defaults") or {}
    chosen = args.preset is not None or pipe.meta.get("preset") is not None  # here or at export
    kwargs = with_call_defaults(kwargs, defaults, chosen)
    if args.steps is not None:
        kwargs.pop("timesteps", None)  # --steps overrides a preset's explicit timesteps
        kwargs["num_inference_steps"] = args.steps
    if args.guidance_scale is not None:
        kwargs["guidance_scale"] = args.guidance_scale
    for name in ("height", "width", "negative_prompt"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    accepted = set(inspect.signature(pipe.__call__).parameters) - {"prompt", "scale", "seed", "generator",
                                                                   "output_type", "preset"}
    for key, _ in args.call_arg:
        if key not in accepted:
            raise UsageError(f"--call-arg {key} is not supported with --onnx; supported: {sorted(accepted)}")
    kwargs.update(dict(args.call_arg))
    kwargs = {key: value for key, value in kwargs.items() if key in accepted}  # a preset's eta: OnnxPipeline reads it itself
    return OnnxSession(pipe=pipe, directory=directory, requested=requested, preset=preset, scheduler=scheduler,
                       call_kwargs=kwargs, load_s=load_s)


def _settings(args: argparse.Namespace, meta: dict[str, Any]) -> _options.PladisSettings:
    """λ from --scale (a static-λ export's own λ by default); α and the temperature are the export's."""
    static = meta.get("static_scale")
    scale = args.scale if args.scale is not None else (static if static is not None else _options.DEFAULT_SCALE)
    if static is not None and scale != static:
        raise UsageError(f"this ONNX export has λ = {static:g} baked in (--static-scale); got --scale {scale:g}")
    for flag, given, exported in (("--alpha", args.alpha, meta["alpha"]),
                                  ("--temperature", args.temperature, meta["temperature"])):
        if given is not None and float(given) != float(exported):
            raise UsageError(f"this ONNX export has {flag.lstrip('-')} = {exported:g} fixed at export; got {flag} "
                             f"{given:g} (re-export with pladis export-onnx {flag} {given:g})")
    return _options.PladisSettings(scale=float(scale), alpha=float(meta["alpha"]),
                                   temperature=float(meta["temperature"]))


def _spec(backbone: str) -> Any:
    import pladis.adapters

    return pladis.adapters.default_registry().get(backbone).spec


def _onnx_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("pladis-onnx", "onnxruntime", "onnxruntime-gpu", "onnx"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
