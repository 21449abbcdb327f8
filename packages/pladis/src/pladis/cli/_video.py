"""Video pipelines in the CLI: ``--num-frames`` / ``--fps`` / ``--video-format``, generating the frames of
one clip, writing them as an animated file a player opens (with a JSON sidecar), side-by-side clips and
the frame a ``maps`` figure shows.

A pipeline makes videos when its ``__call__`` takes ``num_frames`` (AnimateDiff, Wan, LTX-Video).
MP4 (H.264) goes through diffusers' ``export_to_video`` (imageio with imageio-ffmpeg's bundled
ffmpeg: ``pip install 'pladis[video]'``); animated WebP and GIF through Pillow.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from . import _options
from ._errors import CLIError, UsageError, one_line

FORMATS = ("mp4", "webp", "gif")
DEFAULT_FORMAT = "mp4"
DEFAULT_FPS = 8.0
#: H.264 in yuv420p needs even sides; imageio pads other sizes up to a multiple of this.
MACRO_BLOCK = 2


def add_video_options(parser: argparse.ArgumentParser, *, frame: bool = False) -> None:
    """``--num-frames``, ``--fps``, ``--video-format`` (and ``--frame`` for ``maps``)."""
    group = parser.add_argument_group("video (pipelines that take num_frames)")
    group.add_argument("--num-frames", type=_options.positive_int, metavar="N",
                       help="frames per clip (default: the preset's or the pipeline's)")
    if frame:
        group.add_argument("--frame", type=_frame_value, metavar="K",
                           help="the frame (0-based, of the decoded clip) whose per-token maps are shown "
                                "(default: the middle frame, num_frames // 2)")
    group.add_argument("--image", type=Path, metavar="PATH",
                       help="the input image of a pipeline whose call takes one (Wan / LTX-Video "
                            "image-to-video): passed as its image argument")
    if not frame:
        group.add_argument("--fps", type=_options.positive_float, metavar="FPS",
                           help=f"frames per second of the written clip (default: {DEFAULT_FPS:g})")
        group.add_argument("--video-format", choices=FORMATS, metavar="FORMAT",
                           help=f"{', '.join(FORMATS)} (default: {DEFAULT_FORMAT}; mp4 needs pladis[video])")


def _frame_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"frames are counted from 0; got {text}")
    return value


def read_image(args: argparse.Namespace) -> None:
    """``--image PATH``: read the file (before the model loads) into ``args.image_input`` (RGB, or None)."""
    path = getattr(args, "image", None)
    args.image_input = None
    if path is None:
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            args.image_input = image.convert("RGB")
    except FileNotFoundError:
        raise UsageError(f"--image {str(path)!r}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UsageError(f"--image {str(path)!r}: cannot read it as an image ({one_line(error)})") from None


def image_record(args: argparse.Namespace) -> dict[str, Any]:
    """The sidecar entry of ``--image`` (none without it)."""
    path = getattr(args, "image", None)
    return {} if path is None else {"input_image": str(path)}


def is_video(pipe: Any) -> bool:
    """Whether ``pipe`` generates videos (its ``__call__`` takes ``num_frames``)."""
    from ._session import _call_parameters

    return "num_frames" in _call_parameters(type(pipe))


def prepare(session: Any, args: argparse.Namespace) -> bool:
    """Check the video options against the loaded pipeline and put ``--num-frames`` into its call kwargs;
    return whether it is a video pipeline. Image pipelines refuse the video options. ``--image`` (read by
    :func:`read_image`) goes into the call kwargs of a pipeline whose ``__call__`` takes ``image``."""
    from ._session import _call_parameters

    image = getattr(args, "image_input", None)
    if image is not None:
        if "image" not in _call_parameters(type(session.pipe)):
            raise UsageError(f"--image: {type(session.pipe).__name__} takes no input image")
        session.call_kwargs["image"] = image
    video = is_video(session.pipe)
    given = [f"--{name.replace('_', '-')}" for name in ("num_frames", "fps", "video_format")
             if getattr(args, name, None) is not None]
    if not video:
        if given:
            raise UsageError(f"{'/'.join(given)}: {type(session.pipe).__name__} makes images, not videos")
        return False
    if args.num_frames is not None:
        session.call_kwargs["num_frames"] = args.num_frames
    fmt = getattr(args, "video_format", None) or DEFAULT_FORMAT
    if hasattr(args, "video_format") and fmt == "mp4":
        check_mp4_writer()
    return True


def num_frames(session: Any) -> int:
    """The frames per clip of the session's calls (the pipeline's own default when none is set)."""
    import inspect

    if "num_frames" in session.call_kwargs:
        return int(session.call_kwargs["num_frames"])
    default = inspect.signature(type(session.pipe).__call__).parameters["num_frames"].default
    return int(default)


def check_mp4_writer() -> None:
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise UsageError("--video-format mp4 needs imageio and imageio-ffmpeg (pip install 'pladis[video]'); "
                         "or pass --video-format webp or gif") from None


def generate(session: Any, prompt: str, seed: int, progress: Any = None,
             extra: dict[str, Any] | None = None) -> tuple[list[Any], float]:
    """The frames (PIL images) of one clip for ``prompt``, CPU generator seeded ``seed``, and the seconds."""
    import torch

    from ._session import _call_parameters

    kwargs = {**session.call_kwargs, **(extra or {})}
    if progress is not None and "callback_on_step_end" in _call_parameters(type(session.pipe)):
        kwargs["callback_on_step_end"] = progress.on_step
    generator = torch.Generator("cpu").manual_seed(seed)
    start = time.perf_counter()
    frames = list(session.pipe(prompt=prompt, generator=generator, output_type="pil", **kwargs).frames[0])
    if session.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if progress is not None:
        progress.advance()
    return frames, seconds


def side_by_side(left: list[Any], right: list[Any], labels: list[str], title: str, footer: str) -> tuple[list[Any], Any]:
    """Per frame, the captioned grid [left | right] of :func:`pladis.cli._grid.make_grid`; and its layout."""
    from ._grid import make_grid

    grids, layout = [], None
    for a, b in zip(left, right, strict=True):
        grid, layout = make_grid([[a, b]], col_labels=labels, title=title, footer=footer)
        grids.append(grid)
    return grids, layout


def write(frames: list[Any], path: Path, fps: float) -> None:
    """Write ``frames`` (PIL images of one size) as an animated file; its suffix picks the format."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt == "mp4":
        check_mp4_writer()
        from diffusers.utils import export_to_video

        export_to_video(frames, str(path), fps=fps, macro_block_size=MACRO_BLOCK)
    elif fmt == "gif":
        from diffusers.utils import export_to_gif

        export_to_gif(frames, str(path), fps=max(1, round(fps)))
    elif fmt == "webp":
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0,
                       lossless=True)
    else:
        raise ValueError(f"video format must be one of {FORMATS}; got {fmt!r}")


def save(run: Any, frames: list[Any], name: str, record: dict[str, Any]) -> Path:
    """Write ``name``.<format> and its sidecar ``name``.json (the record plus file, frame size, count, fps)."""
    args = run.args
    fmt = getattr(args, "video_format", None) or DEFAULT_FORMAT
    fps = getattr(args, "fps", None) or DEFAULT_FPS
    path = run.out / f"{name}.{fmt}"
    if fmt == "mp4":
        frames = [_even(frame) for frame in frames]
    record = {"file": path.name, "frame_size": list(frames[0].size), "num_frames": len(frames), "fps": fps,
              "video_format": fmt, **record}
    try:
        write(frames, path, fps)
        path.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as error:
        raise CLIError(f"cannot write {str(path)!r}: {one_line(error)}") from None
    run.written += [path, path.with_suffix(".json")]
    return path


def _even(frame: Any) -> Any:
    """``frame`` padded with white to even sides (H.264 in yuv420p has none odd)."""
    from PIL import Image

    width, height = frame.size
    if width % 2 == 0 and height % 2 == 0:
        return frame
    padded = Image.new("RGB", (width + width % 2, height + height % 2), (255, 255, 255))
    padded.paste(frame.convert("RGB"), (0, 0))
    return padded


def check_frame(args: argparse.Namespace, frames: int) -> None:
    """``--frame`` must name one of the clip's ``frames`` (unset: the middle frame)."""
    if args.frame is None:
        args.frame = frames // 2
    if args.frame >= frames:
        raise UsageError(f"--frame {args.frame}: the clip has {frames} frames (0 to {frames - 1})")


def frame_maps(session: Any, args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    """For ``maps`` on a video pipeline: the conditional batch index (of frame ``--frame`` in the denoiser's
    frame-batched calls for AnimateDiff), the query tokens of that frame in an intercepted call's (frames,
    h, w) tokens (Wan, LTX-Video; else None), a generate function returning that frame of the clip (and
    the seconds), and a note for the figure."""
    from . import _video_grid

    frames = num_frames(session)
    intercepted = "attention" in session.spec.extra  # new-style attention (pladis.intercept): one call, all frames
    if intercepted:
        grid = _video_grid.LatentGrid.of(session.pipe, frames, *_video_grid.frame_size(session))
        frames = grid.decoded_frames  # Wan rounds num_frames to r·k + 1
    check_frame(args, frames)
    note = f"frame {args.frame} of {frames}"
    if intercepted:
        latent = grid.latent_frame(args.frame)
        note += f" (latent frame {latent} of {grid.frames}, {grid.height}x{grid.width} tokens)"

        def cond_index(batch: int) -> int:
            return 1 if batch > 1 and bool(getattr(session.pipe, "do_classifier_free_guidance", False)) else 0

        def queries(count: int) -> slice:
            return grid.frame_tokens(latent, count)
    else:
        queries = None

        def cond_index(batch: int) -> int:
            return frame_batch_index(session.pipe, batch, frames, args.frame)

    def generate_frame(prompt: str, seed: int, progress: Any = None, extra: dict[str, Any] | None = None):
        clip, seconds = generate(session, prompt, seed, progress, extra)
        return clip[args.frame], seconds

    return cond_index, queries, generate_frame, note


def frame_batch_index(pipe: Any, batch: int, frames: int, frame: int) -> int:
    """Index of ``frame`` of the conditional branch in a frame-batched denoiser call (AnimateDiff's spatial
    layers see batch = branches × frames: [uncond frames, cond frames, (perturbed frames)] under CFG)."""
    branches = max(1, batch // frames)
    cond = 1 if branches > 1 and bool(getattr(pipe, "do_classifier_free_guidance", False)) else 0
    return cond * frames + frame
