"""``pladis generate``: images with PLADIS on (λ = 0 turns it off), one PNG and JSON sidecar per prompt."""

from __future__ import annotations

import argparse

from . import _commands, _options
from ._output import Run, stem
from ._session import load_session

HELP = "generate images with PLADIS"
DESCRIPTION = """Generate one image per prompt with PLADIS on the model's cross-attention (Eq. 15).

Writes NN-<prompt>.png and a JSON sidecar NN-<prompt>.json (settings, versions, timings) per prompt.
Example: pladis generate "a photo of a cat" --model stable-diffusion-v1-5/stable-diffusion-v1-5 --scale 2
ONNX Runtime: pladis export-onnx --model ID_OR_DIR --out onnx/ && pladis generate "a cat" --onnx onnx/ --scale 2"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    _commands.add_generate_options(parser)  # plugins' options, e.g. pladis-onnx's --onnx
    _options.add_output_options(parser, "outputs/generate")
    # unset λ/α/T stay None until run(): option plugins (--onnx) tell values given from defaults
    parser.set_defaults(run=run, scale=None, alpha=None, temperature=None)


def run(args: argparse.Namespace) -> int:
    prompts = _options.read_prompts(args)
    _options.check_window(args)
    status = _commands.run_generate_options(args, prompts)
    if status is not None:
        return status
    _options.fill_pladis_defaults(args)
    session = load_session(args)
    settings = _options.pladis_settings(args)
    handle = session.apply(settings)
    run_ = Run(args, "generate", len(prompts))
    for index, prompt in enumerate(prompts):
        image, seconds = session.generate(prompt, args.seed, run_.progress)
        record = run_.sidecar(
            session, prompt=prompt, seed=args.seed, pladis=settings.as_dict(),
            pladis_layers=len(handle.layer_names) if handle else 0, timings={"generate_s": round(seconds, 4)},
        )
        run_.save(image, stem(index, prompt), record)
    return run_.finish()
