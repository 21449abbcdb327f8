"""Finding and loading the model: backbone detection from model_index.json, adapter loaders, SEG."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from ._errors import CLIError, UsageError, one_line

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def device_for(requested: str | None) -> str:
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise CLIError(f"--device cuda was requested but CUDA is not available ({why}); use --device cpu")
    return requested or ("cuda" if available else "cpu")


def registry_get(registry: Any, name: str) -> Any:
    try:
        return registry.get(name)
    except ValueError as error:
        raise UsageError(one_line(error)) from None


def check_preset(spec: Any, name: str | None) -> None:
    if name is not None and name not in spec.presets:
        raise UsageError(f"unknown preset {name!r} for backbone {spec.name!r}; choose one of {sorted(spec.presets)}")


def detect(registry: Any, model: str) -> Any:
    """The adapter for ``model``: its ``model_index.json`` class, then model-id patterns and priority. A
    hub repo without ``model_index.json`` (distilled weights only, e.g. ByteDance/SDXL-Lightning) goes to
    the adapter whose model-id patterns it matches: its loader takes that repo on the default base."""
    adapters = [info for info in registry.adapters().values() if not info.spec.generic]
    try:
        class_name = _pipeline_class_name(model)
    except CLIError:
        named = [info for info in adapters if any(re.search(p, model, flags=re.IGNORECASE)
                                                  for p in info.spec.model_id_patterns)]
        if Path(model).expanduser().exists() or not named:
            raise
        return max(named, key=lambda info: (info.spec.priority, info.name))
    candidates = [info for info in adapters if class_name in info.spec.pipeline_classes]
    if not candidates:
        generic = [info for info in registry.adapters().values() if info.spec.generic]
        if not generic:
            raise UsageError(f"no installed adapter serves {class_name} (from {model!r}); "
                             f"installed backbones: {sorted(registry.adapters())}; pass --backbone")
        return generic[0]

    def rank(info: Any) -> tuple[int, int, int, str]:
        hit = any(re.search(p, model, flags=re.IGNORECASE) for p in info.spec.model_id_patterns)
        return (int(hit), int(hit or not info.spec.model_id_patterns), info.spec.priority, info.name)

    return max(candidates, key=rank)


def check_embedded_options(args: Any) -> None:
    """The default toy model is built, not loaded: options of a load are usage errors with it."""
    if getattr(args, "variant", None) or getattr(args, "load_arg", None):
        raise UsageError("--variant and --load-arg apply to a --model or --backbone load, not to the default toy model")


def check_fit(registry: Any, spec: Any, model: str) -> None:
    """``--backbone`` against the class in a local folder's model_index.json (hub ids are not read)."""
    if spec.generic or not spec.pipeline_classes or not Path(model).expanduser().is_dir():
        return
    class_name = _pipeline_class_name(model)
    if class_name not in spec.pipeline_classes:
        fits = sorted(i.name for i in registry.adapters().values() if class_name in i.spec.pipeline_classes)
        raise UsageError(f"backbone {spec.name!r} does not serve {class_name} ({model!r}); "
                         f"matching backbones: {fits or 'none'}")


def _pipeline_class_name(model: str) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        try:
            return str(json.loads(index.read_text(encoding="utf-8"))["_class_name"])
        except FileNotFoundError:
            raise UsageError(f"{model!r} is not a diffusers pipeline folder: it has no model_index.json") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UsageError(f"cannot read the pipeline class from {str(index)!r} (is it a diffusers "
                             f"model_index.json?): {one_line(error)}") from None
    if path.exists():
        raise UsageError(f"--model must be a pipeline folder or a hub id; {model!r} is a file")
    if not HUB_ID.fullmatch(model):
        raise UsageError(f"model folder {model!r} does not exist (and it is not a hub id like 'org/name')")
    from diffusers import DiffusionPipeline

    try:
        return str(DiffusionPipeline.load_config(model)["_class_name"])
    except Exception as error:  # network, missing repo, missing model_index.json
        raise CLIError(f"cannot read model_index.json of {model!r}: {one_line(error)}") from None


def load(spec: Any, model: str | None, *, dtype: Any, pag: bool, variant: str | None,
         extra: dict[str, Any] | None = None, preset: str | None = None) -> Any:
    """``spec.load`` (or diffusers' auto pipelines for adapters without a loader) with one-line errors.

    A loader that takes ``steps`` (the distilled backbones) gets ``preset`` there, so that the weights it
    fetches are the preset's; a ``--load-arg steps=`` that picks other weights is a usage error."""
    extra = dict(extra or {})
    if preset and "steps" not in extra and _takes(spec.load, "steps"):
        extra["steps"] = preset
    pipe = _load(spec, model, dtype=dtype, pag=pag, variant=variant, extra=extra)
    loaded = getattr(pipe, "_pladis_preset", None)
    if preset and loaded and loaded != preset:
        raise UsageError(f"--preset {preset} does not match the {loaded} weights that --load-arg chose; drop one of them")
    return pipe


def _takes(function: Any, name: str) -> bool:
    try:
        return function is not None and name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _load(spec: Any, model: str | None, *, dtype: Any, pag: bool, variant: str | None, extra: dict[str, Any]) -> Any:
    import diffusers

    if model is not None and not Path(model).expanduser().exists() and not HUB_ID.fullmatch(model):
        raise UsageError(f"model folder {model!r} does not exist (and it is not a hub id like 'org/name')")
    if model is not None and Path(model).expanduser().is_dir():
        check_weights(Path(model).expanduser())
    try:
        if spec.load is not None:
            # diffusers' keyword is `dtype` (`torch_dtype` is deprecated); a loader without it gets the old one
            key = "dtype" if _takes(spec.load, "dtype") or _takes_kwargs(spec.load) else "torch_dtype"
            return spec.load(model, variant=variant, pag=pag, **{key: dtype}, **extra)
        if model is None:
            raise UsageError(f"backbone {spec.name!r} has no default model; pass --model")
        if pag:
            return diffusers.AutoPipelineForText2Image.from_pretrained(model, dtype=dtype, variant=variant,
                                                                       enable_pag=True, **extra)
        return diffusers.DiffusionPipeline.from_pretrained(model, dtype=dtype, variant=variant, **extra)
    except CLIError:
        raise
    except Exception as error:
        message = one_line(str(error).replace(_HUB_NOISE, "").rstrip(" ."))
        if model is None:
            default = spec.extra.get("default_model", "its default model")
            raise CLIError(f"--backbone {spec.name} without --model loads {default} from the Hugging Face hub, "
                           f"which failed ({message}); pass --model ID_OR_DIR, or drop --backbone to use the "
                           f"embedded toy model (the default)") from None
        raise CLIError(f"cannot load {model!r} with backbone {spec.name!r}: {message}") from None


#: The tail of huggingface_hub's offline / not-found errors, which the one-line message has no trace for.
_HUB_NOISE = "Check out the root cause in the stacktrace above."
_WEIGHTS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
#: Components that hold no weights (tokenizers, schedulers, image processors).
_NO_WEIGHTS = re.compile(r"(Scheduler|Tokenizer|TokenizerFast|Processor|FeatureExtractor)$")


def check_weights(folder: Path) -> None:
    """Every model component listed in ``folder``'s model_index.json has a weights file, and every
    ``.safetensors`` file there is whole (its header's tensors fit in the file): else a usage error
    naming the file."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # reported by the loader
    for name, value in index.items() if isinstance(index, dict) else ():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[1] is None:
            continue
        sub = folder / name
        if _NO_WEIGHTS.search(str(value[1])) or not (sub / "config.json").is_file():
            continue
        files = [path for pattern in _WEIGHTS for path in sorted(sub.glob(pattern))]
        if not files:
            raise UsageError(f"{str(sub)!r} has no weights file ({value[1]} needs e.g. "
                             f"diffusion_pytorch_model.safetensors or model.safetensors)")
        for path in files:
            if path.suffix == ".safetensors":
                _check_safetensors(path)


def _check_safetensors(path: Path) -> None:
    """A usage error naming ``path`` when it is not a whole safetensors file (truncated or damaged)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if not 2 <= length <= size - 8:
                raise ValueError("bad header length")
            header = json.loads(file.read(length))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise UsageError(f"weights file {str(path)!r} is damaged (not a safetensors file)") from None
    if 8 + length + end != size:
        raise UsageError(f"weights file {str(path)!r} is truncated or damaged ({size} bytes; its header "
                         f"describes {8 + length + end})")


def _takes_kwargs(function: Any) -> bool:
    try:
        return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False


def to_seg(pipe: Any, layers: str) -> Any:
    """The SEG pipeline (``pladis.guidance``) sharing ``pipe``'s components."""
    try:
        from pladis.guidance import StableDiffusionSEGPipeline, StableDiffusionXLSEGPipeline
    except ImportError as error:
        raise CLIError(f"--seg-scale: smoothed energy guidance is unavailable ({one_line(error)})") from None
    import diffusers

    if isinstance(pipe, diffusers.StableDiffusionXLPipeline):
        cls = StableDiffusionXLSEGPipeline
    elif isinstance(pipe, diffusers.StableDiffusionPipeline):
        cls = StableDiffusionSEGPipeline
    else:
        raise UsageError(f"--seg-scale supports SD 1.x/2.x and SDXL pipelines, not {type(pipe).__name__}")
    selected = [layer.strip() for layer in layers.split(",") if layer.strip()]
    try:
        seg = cls.from_pipe(pipe, seg_applied_layers=selected if len(selected) != 1 else selected[0])
    except ValueError as error:
        raise UsageError(f"--seg-layers: {one_line(error)}") from None
    for attr in ("_pladis_model_id", "_pladis_preset"):
        if hasattr(pipe, attr):
            setattr(seg, attr, getattr(pipe, attr))
    return seg
