"""The page's inputs, checked with the CLI's own option types before anything runs.

Every field arrives as text (the page sends what was typed). A bad value raises :class:`FormError`
naming the field and the allowed values; a valid form becomes an :class:`argparse.Namespace` with the
attributes the CLI's commands read (``steps``, ``guidance_scale``, ``pag_scale``, ``scale``, ``alpha``,
...), so ``pladis.cli._options.pladis_settings`` and the session's call kwargs treat it as they treat
a command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from pladis.cli import _options

KINDS = ("compare", "sweep", "maps")
GUIDANCE = ("cfg", "pag", "seg")
#: The page's bounds: one request must not tie the server up for hours.
MAX_STEPS = 200
MAX_PROMPT_CHARS = 2000
MAX_SWEEP_CELLS = 48
MAX_TOKENS = 8


class FormError(ValueError):
    """A bad page input: ``field`` is the form field, the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _steps(text: str) -> int:
    value = _options.positive_int(text)
    if value > MAX_STEPS:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_STEPS}] on this page; got {text}")
    return value


def _text(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise FormError(name, f"{name}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _parse(values: Mapping[str, Any], name: str, label: str, parse: Callable[[str], Any], default: Any) -> Any:
    text = _text(values, name)
    if not text:
        return default
    try:
        return parse(text)
    except argparse.ArgumentTypeError as error:
        raise FormError(name, f"{label}: {error}") from None


def parse_request(values: Mapping[str, Any], *, guidance: Mapping[str, bool], backend: str = "auto") -> argparse.Namespace:
    """The checked settings of one request (``values``: the page's fields as text).

    ``guidance``: which of "pag" / "seg" the loaded model offers. Raises :class:`FormError`.
    """
    if not isinstance(values, Mapping):
        raise FormError("form", "the request body must be a JSON object of form fields")
    kind = _text(values, "kind") or "compare"
    if kind not in KINDS:
        raise FormError("kind", f"kind: one of {', '.join(KINDS)}; got {kind!r}")
    prompt = _text(values, "prompt")
    if not prompt:
        raise FormError("prompt", "prompt: enter a prompt (it is empty)")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise FormError("prompt", f"prompt: at most {MAX_PROMPT_CHARS} characters; got {len(prompt)}")
    args = argparse.Namespace(
        kind=kind, prompt=prompt, negative_prompt=_text(values, "negative_prompt") or None,
        seed=_parse(values, "seed", "seed", _options.seed_value, 0),
        steps=_parse(values, "steps", "steps", _steps, None),
        guidance_scale=_parse(values, "guidance_scale", "CFG scale", _options.non_negative_float, None),
        height=None, width=None, call_arg=[], backend=backend,
        pag_scale=0.0, seg_scale=0.0, seg_layers=None, seg_blur_sigma=None,
        temperature=_parse(values, "temperature", "temperature", _options.temperature_value,
                           _options.DEFAULT_TEMPERATURE),
        layers=_parse(values, "layers", "layers", _options.layers_value, "all"),
        start=_parse(values, "start", "start", _options.fraction, 0.0),
        end=_parse(values, "end", "end", _options.fraction, 1.0),
    )
    _guidance(values, args, guidance)
    if args.start > args.end:
        raise FormError("start", f"start ({args.start:g}) must not exceed end ({args.end:g})")
    if kind == "sweep":
        args.scales = _parse(values, "scales", "λ values", _options.number_list(_options.scale_value),
                             list(_options.DEFAULT_SWEEP_SCALES))
        args.alphas = _parse(values, "alphas", "α values", _options.number_list(_options.alpha_value),
                             list(_options.DEFAULT_SWEEP_ALPHAS))
        if len(args.scales) * len(args.alphas) > MAX_SWEEP_CELLS:
            raise FormError("scales", f"λ values × α values: at most {MAX_SWEEP_CELLS} cells on this page; got "
                                      f"{len(args.scales)} × {len(args.alphas)}")
    else:
        args.scale = _parse(values, "scale", "λ (scale)", _options.scale_value, _options.DEFAULT_SCALE)
        args.alpha = _parse(values, "alpha", "α (alpha)", _options.alpha_value, _options.DEFAULT_ALPHA)
        if args.scale == 0:
            raise FormError("scale", "λ (scale): must differ from 0 here (λ = 0 is the PLADIS-off image itself)")
    if kind == "maps":
        tokens = _text(values, "tokens")
        args.tokens = [word.strip().lower() for word in tokens.split(",") if word.strip()] or None
    return args


def _guidance(values: Mapping[str, Any], args: argparse.Namespace, available: Mapping[str, bool]) -> None:
    kind = _text(values, "guidance") or "cfg"
    if kind not in GUIDANCE:
        raise FormError("guidance", f"guidance: one of {', '.join(GUIDANCE)}; got {kind!r}")
    if kind != "cfg" and not available.get(kind):
        raise FormError("guidance", f"guidance: {kind.upper()} is not available for this model")
    if kind == "pag":
        args.pag_scale = _parse(values, "pag_scale", "PAG scale", _options.non_negative_float, 3.0)
    elif kind == "seg":
        args.seg_scale = _parse(values, "seg_scale", "SEG scale", _options.non_negative_float, 3.0)
        args.seg_layers = _text(values, "seg_layers") or None
        args.seg_blur_sigma = _parse(values, "seg_blur_sigma", "SEG blur σ", _options.positive_float, None)
