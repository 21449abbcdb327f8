"""``pladis generate``: images with PLADIS on (λ = 0 turns it off), one PNG and JSON sidecar per prompt."""

from __future__ import annotations

import argparse
import functools

from . import _commands, _options, _video
from ._output import Run, stem
from ._session import load_session

HELP = "generate images with PLADIS"
DESCRIPTION = """Generate one image per prompt with PLADIS on the model's cross-attention (Eq. 15).

Writes NN-<prompt>.png and a JSON sidecar NN-<prompt>.json (settings, versions, timings) per prompt; a video
pipeline (AnimateDiff, Wan, LTX-Video) writes NN-<prompt>.mp4 (or --video-format webp / gif) instead.
Example: pladis generate "a photo of a cat" --model stable-diffusion-v1-5/stable-diffusion-v1-5 --scale 2
ONNX Runtime: pladis export-onnx --model ID_OR_DIR --out onnx/ && pladis generate "a cat" --onnx onnx/ --scale 2"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    _video.add_video_options(parser)
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
    _video.read_image(args)
    session = load_session(args)
    video = _video.prepare(session, args)
    settings = _options.pladis_settings(args)
    handle = session.apply(settings)
    run_ = Run(args, "generate", len(prompts))
    # a video pipeline's "image" is the list of its frames, written as one animated file
    generate_one = functools.partial(_video.generate, session) if video else session.generate
    save_one = functools.partial(_video.save, run_) if video else run_.save
    for index, prompt in enumerate(prompts):
        image, seconds = generate_one(prompt, args.seed, run_.progress)
        record = run_.sidecar(
            session, prompt=prompt, seed=args.seed, **_video.image_record(args), pladis=settings.as_dict(),
            pladis_layers=len(handle.layer_names) if handle else 0, timings={"generate_s": round(seconds, 4)},
        )
        save_one(image, stem(index, prompt), record)
    return run_.finish()
