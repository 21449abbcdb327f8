"""Shared command-line options (model, sampling, PLADIS, prompts, output) and their parsing."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import UsageError

DTYPES = ("fp32", "fp16", "bf16")
#: λ values of ``pladis sweep`` (the paper's Figures 5, 18 and 19 sweep λ; 0 is the baseline).
DEFAULT_SWEEP_SCALES = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0)
DEFAULT_SWEEP_ALPHAS = (1.5, 2.0)
#: Defaults of --scale, --alpha and --temperature (``generate`` resolves unset values with
#: :func:`fill_pladis_defaults`, so that ``--onnx`` can tell them from values given on the command line).
DEFAULT_SCALE, DEFAULT_ALPHA, DEFAULT_TEMPERATURE = 2.0, 1.5, 1.0


# --- argparse value types: invalid values are usage errors (exit status 2) -------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def scale_value(text: str) -> float:
    """λ: any finite real (0 = PLADIS off)."""
    return _number(text)


def alpha_value(text: str) -> float:
    """α, checked as the library checks it (1, or [1.01, 2])."""
    from .._checks import check_alpha  # imports torch: only once an alpha is given

    try:
        return check_alpha(_number(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def temperature_value(text: str) -> float:
    from .._checks import TEMPERATURE_RANGE  # imports torch: only once a temperature is given

    value, (low, high) = _number(text), TEMPERATURE_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"temperature must be in [{low:g}, {high:g}]; got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1]; got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {text}")
    return value


def side(text: str) -> int:
    value = positive_int(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"image sides must be multiples of 8; got {text}")
    return value


#: torch.Generator.manual_seed takes seeds of 64 bits.
MAX_SEED = 2**64 - 1
#: An upper bound of --steps (schedulers also bound it by their training timesteps, see the session).
MAX_STEPS = 10_000


def seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds are in [0, 2**64 - 1]; got {text}")
    return value


def steps_value(text: str) -> int:
    value = positive_int(text)
    if value > MAX_STEPS:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_STEPS}]; got {text}")
    return value


def number_list(item_type: Any) -> Any:
    """A type for comma-separated lists ("0,1,2.5") whose items are checked by ``item_type``."""

    def parse(text: str) -> list[float]:
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or "" in items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers like 0,1,2; got {text!r}")
        values = [item_type(item) for item in items]
        return list(dict.fromkeys(values))  # unique, in order

    return parse


def layers_value(text: str) -> str | list[str | int]:
    """``--layers``: "all", group names ("mid,up"), block indices or ranges ("0-9", "3")."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("--layers needs at least one layer group, index or range")
    if items == ["all"]:
        return "all"
    return [int(item) if item.isdigit() else item for item in items]


def call_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, null), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a Python identifier as KEY; got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


# --- option groups --------------------------------------------------------------------------------------


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="*", metavar="PROMPT", help="one or more prompts")
    parser.add_argument("-f", "--prompt-file", type=Path, metavar="FILE",
                        help="read prompts from a UTF-8 text file, one per line (blank lines and #-comments skipped)")
    parser.add_argument("--negative-prompt", metavar="TEXT", help="negative prompt for every image")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="ID_OR_DIR",
                       help="hub id or local diffusers pipeline folder (default: the project's trained 16 px "
                            "SD1.5-architecture toy model shipped with pladis)")
    group.add_argument("--backbone", metavar="NAME",
                       help="adapter to use (default: detected from model_index.json); see `pladis plugins`")
    group.add_argument("--preset", metavar="NAME",
                       help="the adapter's sampling preset (scheduler, steps, CFG); default: the adapter's default")
    group.add_argument("--variant", metavar="NAME", help="weights variant to load, e.g. fp16")
    group.add_argument("--load-arg", type=call_arg, action="append", default=[], metavar="KEY=VALUE",
                       help="extra keyword of the adapter's loader (VALUE read as JSON), repeatable, e.g. "
                            "weights=unet.safetensors or steps=4 for distilled SDXL backbones")
    group.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    group.add_argument("--dtype", choices=DTYPES, help="default: fp16 on cuda, fp32 on cpu")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (override the preset)")
    group.add_argument("--steps", type=steps_value, metavar="N", help="number of denoising steps")
    group.add_argument("--guidance-scale", type=non_negative_float, metavar="W", help="CFG scale")
    group.add_argument("--pag-scale", type=non_negative_float, default=0.0, metavar="S",
                       help="perturbed-attention guidance scale (loads the PAG pipeline; 0 = off)")
    group.add_argument("--seg-scale", type=non_negative_float, default=0.0, metavar="S",
                       help="smoothed energy guidance scale (SD 1.x/2.x and SDXL; 0 = off)")
    group.add_argument("--seg-layers", metavar="LAYERS",
                       help="self-attention layers SEG blurs, comma-separated (default: mid)")
    group.add_argument("--seg-blur-sigma", type=positive_float, metavar="SIGMA",
                       help="SEG's query blur (default: pladis.guidance's, infinite blur)")
    group.add_argument("--seed", type=seed_value, default=0, metavar="N", help="random seed (default: 0)")
    group.add_argument("--height", type=side, metavar="H", help="image height in pixels")
    group.add_argument("--width", type=side, metavar="W", help="image width in pixels")
    group.add_argument("--call-arg", type=call_arg, action="append", default=[], metavar="KEY=VALUE",
                       help="extra pipeline-call keyword (VALUE read as JSON), repeatable")


# pladis.kernels.backends.BACKENDS, spelt out so that parsing the command line does not import torch
# (a test keeps the two equal).
BACKEND_CHOICES = ("auto", "eager", "compile", "triton", "native")


def add_pladis_options(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    group = parser.add_argument_group("PLADIS (Eq. 15)")
    if sweep:
        group.add_argument("--scales", type=number_list(scale_value), default=list(DEFAULT_SWEEP_SCALES),
                           metavar="L1,L2,…", help="λ values, the grid's columns (default: 0,1,1.5,2,2.5,3)")
        group.add_argument("--alphas", type=number_list(alpha_value), default=list(DEFAULT_SWEEP_ALPHAS),
                           metavar="A1,A2,…", help="α values, the grid's rows (default: 1.5,2)")
    else:
        group.add_argument("--scale", type=scale_value, default=DEFAULT_SCALE, metavar="LAMBDA",
                           help="λ: 0 = off, 1 = pure sparse, >1 extrapolates (default: 2.0)")
        group.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA, metavar="ALPHA",
                           help="sparse map in [1, 2]: 1.5 = entmax15, 2 = sparsemax (default: 1.5)")
    group.add_argument("--temperature", type=temperature_value, default=DEFAULT_TEMPERATURE, metavar="T",
                       help="divides the sparse logits, in [1e-6, 1e6] (default: 1.0)")
    group.add_argument("--layers", type=layers_value, default="all", metavar="SEL",
                       help='cross-attention layers: "all", groups ("mid,up"; UNets) or block ranges ("0-9"; DiTs such as SANA)')
    group.add_argument("--start", type=fraction, default=0.0, metavar="F",
                       help="trajectory fraction where PLADIS starts (0 = pure noise; default 0)")
    group.add_argument("--end", type=fraction, default=1.0, metavar="F",
                       help="trajectory fraction where PLADIS ends (1 = clean image; default 1)")
    group.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                       help="attention implementation: auto = the fastest here (default); the others as "
                            "in pladis.apply (the images agree to ~1e-6)")


def add_output_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default_out), metavar="DIR",
                        help=f"output folder (default: {default_out})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no list of written files")


# --- values read from the options -----------------------------------------------------------------------


@dataclass(frozen=True)
class PladisSettings:
    """The PLADIS settings of one image: λ, α, temperature, layers and trajectory window."""

    scale: float
    alpha: float
    temperature: float = 1.0
    layers: Any = "all"
    start: float = 0.0
    end: float = 1.0
    backend: str = "auto"  # speed only: not part of as_dict, which describes the image

    @property
    def enabled(self) -> bool:
        return self.scale != 0.0

    def label(self) -> str:
        """A caption (ASCII: Pillow's default font has no Greek letters), with the temperature, layers and
        window where they are not the defaults."""
        if not self.enabled:
            return "PLADIS off"
        parts = [f"PLADIS lambda={self.scale:g} alpha={self.alpha:g}"]
        if self.temperature != DEFAULT_TEMPERATURE:
            parts.append(f"T={self.temperature:g}")
        if self.layers != "all":
            layers = self.layers if isinstance(self.layers, str) else ",".join(str(x) for x in self.layers)
            parts.append(f"layers={layers}")
        if (self.start, self.end) != (0.0, 1.0):
            parts.append(f"window={self.start:g}-{self.end:g}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "scale": self.scale, "alpha": self.alpha, "temperature": self.temperature,
                "layers": self.layers, "start": self.start, "end": self.end}


def fill_pladis_defaults(args: argparse.Namespace) -> None:
    """Replace unset (None) --scale / --alpha / --temperature with their defaults."""
    for name, default in (("scale", DEFAULT_SCALE), ("alpha", DEFAULT_ALPHA), ("temperature", DEFAULT_TEMPERATURE)):
        if getattr(args, name, None) is None:
            setattr(args, name, default)


def pladis_settings(args: argparse.Namespace, *, scale: float | None = None,
                    alpha: float | None = None) -> PladisSettings:
    return PladisSettings(
        scale=args.scale if scale is None else scale,
        alpha=args.alpha if alpha is None else alpha,
        temperature=args.temperature,
        layers=args.layers,
        start=args.start,
        end=args.end,
        backend=getattr(args, "backend", "auto"),
    )


def check_window(args: argparse.Namespace) -> None:
    if args.start > args.end:
        raise UsageError(f"--start ({args.start:g}) must not exceed --end ({args.end:g})")


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts of the positional arguments, then those of ``--prompt-file``; at least one."""
    prompts = [p.strip() for p in args.prompts if p.strip()]
    if args.prompt_file is not None:
        try:
            text = args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            raise UsageError(f"cannot read prompt file {str(args.prompt_file)!r}: {reason}") from None
        lines = [line.strip() for line in text.splitlines()]
        from_file = [line for line in lines if line and not line.startswith("#")]
        if not from_file:
            raise UsageError(f"prompt file {str(args.prompt_file)!r} holds no prompt")
        prompts += from_file
    if not prompts:
        raise UsageError("give at least one PROMPT or --prompt-file FILE")
    return prompts
