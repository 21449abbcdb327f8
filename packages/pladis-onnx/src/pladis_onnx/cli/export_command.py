"""``pladis export-onnx``: export a pipeline to ONNX with PLADIS in its cross-attention, for
``pladis generate --onnx DIR`` (needs the optional ``pladis-onnx``: ``pip install "pladis[onnx]"``)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from pladis.cli import _options
from pladis.cli._defaults import EMBEDDED_DEFAULT
from pladis.cli._errors import CLIError, UsageError, one_line
from pladis.cli._loading import check_embedded_options, check_fit, check_preset, detect, load, registry_get
from pladis.cli._output import versions

from . import generate_option as _onnx

HELP = "export a pipeline to ONNX (PLADIS in the denoiser, λ a graph input)"
DESCRIPTION = f"""Export a text-to-image pipeline to ONNX for ONNX Runtime, with PLADIS (Eq. 15) in every
cross-attention of the denoiser: λ is the graph input `pladis_scale` (one export serves every λ, 0 included)
unless --static-scale bakes it in; α and the temperature are fixed at export. Writes denoiser.onnx, the text
encoder(s), vae_decoder.onnx, tokenizer(s), scheduler/ and pladis_onnx.json (which also records the source
model and this command) into --out. Run it with: pladis generate PROMPT --onnx DIR [--scale λ] [--provider P].
Joint-attention transformers (FLUX.1, FLUX.2, SD3/3.5) get PLADIS' joint rule instead; for them only
denoiser.onnx (λ the input `pladis_scale`, text length fixed at the pipeline's default max_sequence_length)
and pladis_onnx.json are written, and `generate --onnx` cannot run them yet.
Needs {_onnx.INSTALL_HINT}.
Example: pladis export-onnx --model stable-diffusion-v1-5/stable-diffusion-v1-5 --out onnx/sd15 --fp16"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export-onnx", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="ID_OR_DIR",
                       help="hub id or local diffusers pipeline folder (default: the project's trained 16 px "
                            "SD1.5-architecture toy model shipped with pladis)")
    group.add_argument("--backbone", metavar="NAME",
                       help="adapter to use (default: detected from model_index.json); see `pladis plugins`")
    group.add_argument("--preset", metavar="NAME",
                       help="sampling preset recorded as the export's default (default: the adapter's)")
    group.add_argument("--variant", metavar="NAME", help="weights variant to load, e.g. fp16")
    group.add_argument("--load-arg", type=_options.call_arg, action="append", default=[], metavar="KEY=VALUE",
                       help="extra keyword of the adapter's loader (VALUE read as JSON), repeatable")
    group = parser.add_argument_group("export")
    group.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder of the export")
    group.add_argument("--opset", type=_options.positive_int, default=17, metavar="N",
                       help="ONNX opset, 14-20 (default: 17)")
    group.add_argument("--fp16", action="store_true",
                       help="float16 denoiser and text encoders (the entmax threshold is still solved in fp32)")
    group.add_argument("--alpha", type=_options.alpha_value, default=_options.DEFAULT_ALPHA, metavar="ALPHA",
                       help="α in (1, 2]: 1.5 = entmax15, 2 = sparsemax (default: 1.5)")
    group.add_argument("--temperature", type=_options.temperature_value, default=_options.DEFAULT_TEMPERATURE,
                       metavar="T", help="divides the sparse logits (default: 1.0)")
    group.add_argument("--static-scale", type=_options.scale_value, metavar="LAMBDA",
                       help="bake λ into the graph instead of making it an input")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress message, no list of written files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pladis_onnx = _onnx.require()
    from pladis_onnx.export import check_opset

    try:
        check_opset(args.opset)
    except ValueError as error:
        raise UsageError(f"--opset: {one_line(error)}") from None
    if args.alpha <= 1.0:
        raise UsageError("--alpha must be in (1, 2] for export (1 is plain softmax: nothing sparse to export)")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {str(args.out)!r} is a file, not a folder")
    started = time.perf_counter()
    pipe, spec, source, embedded, extra = _load(args)
    load_s = time.perf_counter() - started
    if not args.quiet:
        print(f"pladis export-onnx: exporting {source} ({spec.name}) to {args.out} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        out = pladis_onnx.export_pipeline(pipe, args.out, backbone=spec.name, opset=args.opset, fp16=args.fp16,
                                          alpha=args.alpha, temperature=args.temperature,
                                          static_scale=args.static_scale)
    except (ValueError, RuntimeError, OSError) as error:
        raise CLIError(f"cannot export {source!r} to ONNX: {one_line(error)}") from None
    export_s = time.perf_counter() - started
    meta_path = out / pladis_onnx.export.METADATA_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta[_onnx.CLI_KEY] = {
        "command": "export-onnx", "argv": list(getattr(args, "argv", [])), "source": source, "embedded": embedded,
        "embedded_description": EMBEDDED_DEFAULT.description if embedded else None, **extra,
        "versions": {**versions(), **_onnx._onnx_versions()},
        "timings": {"load_s": round(load_s, 4), "export_s": round(export_s, 4)},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
    }
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    if not args.quiet:
        for path in sorted(out.iterdir()):
            print(f"wrote {path}{'/' if path.is_dir() else ''}")
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, Any, str, bool, dict[str, Any]]:
    """The fp32 CPU pipeline to export, its adapter spec, source name, embedded flag and CLI record."""
    import torch

    import pladis.adapters
    from pladis.apply import cross_attention_modules
    from pladis.intercept import attention_modules, uses_intercept

    registry = pladis.adapters.default_registry()
    info = registry_get(registry, args.backbone) if args.backbone else None
    embedded = args.model is None and info is None
    if embedded:
        check_embedded_options(args)
        info = registry_get(registry, EMBEDDED_DEFAULT.backbone)
        check_preset(info.spec, args.preset)
        pipe, source = EMBEDDED_DEFAULT.build(), EMBEDDED_DEFAULT.name
    else:
        if info is None:
            info = detect(registry, args.model)
        elif args.model is not None:
            check_fit(registry, info.spec, args.model)
        check_preset(info.spec, args.preset)
        pipe = load(info.spec, args.model, dtype=torch.float32, pag=False, variant=args.variant,
                    extra=dict(args.load_arg), preset=args.preset)
        source = args.model or str(info.spec.extra.get("default_model", info.spec.name))
    if args.preset is not None:
        pipe._pladis_preset = args.preset  # the export's default preset (pladis_onnx.json "preset")
    try:
        denoiser = pladis.adapters.find_denoiser(pipe)
        layers = len(attention_modules(denoiser, info.spec) if uses_intercept(info.spec) else
                     cross_attention_modules(denoiser))
    except (ValueError, AttributeError) as error:
        raise CLIError(f"cannot export {source!r} to ONNX: {one_line(error)}") from None
    extra = {"adapter": {"distribution": info.distribution, "version": info.version}, "pladis_layers": layers,
             "call_defaults": dict(EMBEDDED_DEFAULT.call_defaults) if embedded else {}}
    return pipe, info.spec, source, embedded, extra
