"""``pladis maps``: per-token cross-attention maps, PLADIS off vs on, as one figure (the paper's Figure 10)."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _options, _video
from ._errors import UsageError
from ._grid import colour_bar, overlay
from ._output import Run, stem
from ._session import load_session

HELP = "per-token cross-attention maps, PLADIS off vs on"
DESCRIPTION = """Generate every prompt with PLADIS off and on while recording the cross-attention maps of each
prompt token (head-averaged, conditional branch only, averaged over the denoising steps and over the
layers after upsampling to a common size) with a processor hook that leaves the images unchanged.
Writes NN-<prompt>-maps.png (rows: off / on; columns: the image, one map per token, each token's colour
scale shared by both rows, and the colour bar: dark 0 to bright = the token's peak), its JSON sidecar,
and the raw maps as NN-<prompt>-maps.npz.
On a video pipeline (AnimateDiff, Wan, LTX-Video) the maps and the image are those of one frame, --frame K
(default: the middle frame); on Wan and LTX-Video, whose latents compress time, the maps are those of the
latent frame that pixel frame K is decoded from (0 for K = 0, else (K - 1) // r + 1 for a VAE compressing
r frames into one after the first).
Example: pladis maps "a red circle left of a blue square" --model DIR --tokens circle,square"""

DISPLAY_SIDE = 128


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("maps", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _options.add_prompt_options(parser)
    _options.add_model_options(parser)
    _options.add_sampling_options(parser)
    _options.add_pladis_options(parser)
    _video.add_video_options(parser, frame=True)
    _options.add_output_options(parser, "outputs/maps")
    parser.add_argument("--tokens", metavar="WORD,…", help="show only these prompt tokens (default: all)")
    parser.add_argument("--max-tokens", type=_options.positive_int, default=8, metavar="N",
                        help="show at most N tokens (default: 8)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prompts = _options.read_prompts(args)
    _options.check_window(args)
    if args.scale == 0:
        raise UsageError("maps needs --scale different from 0 (λ = 0 is the baseline row itself)")
    wanted = [w.strip().lower() for w in args.tokens.split(",")] if args.tokens is not None else None
    if wanted is not None and (not any(wanted) or "" in wanted):
        raise UsageError(f"--tokens needs comma-separated prompt words like circle,square; got {args.tokens!r}")
    _video.read_image(args)
    session = load_session(args)
    pipe, tokenizer = session.pipe, getattr(session.pipe, "tokenizer", None)
    if wanted and tokenizer is not None:
        _check_tokens(tokenizer, prompts, wanted, pipe=pipe)
    extra, notes = _aligned_keys(pipe, dict(args.call_arg))
    cond_index, queries, generate_one = (lambda batch: _cond_index(pipe, batch)), None, session.generate
    if _video.prepare(session, args):
        cond_index, queries, generate_one, note = _video.frame_maps(session, args)
        notes.append(note)
    elif args.frame is not None:
        raise UsageError(f"--frame: {type(pipe).__name__} makes images, not videos")
    off, on = _options.pladis_settings(args, scale=0.0), _options.pladis_settings(args)
    run_ = Run(args, "maps", 2 * len(prompts))
    for index, prompt in enumerate(prompts):
        prompt_maps(session, run_, prompt, index, seed=args.seed, off=off, on=on, wanted=wanted,
                    max_tokens=args.max_tokens, extra=extra, notes=notes, cond_index=cond_index,
                    queries=queries, generate_one=generate_one, progress=run_.progress,
                    **_video.image_record(args))
    return run_.finish()


@dataclass(frozen=True)
class PromptMaps:
    """What :func:`prompt_maps` wrote for one prompt."""

    grid: Path
    npz: Path
    tokens: list[tuple[int, str]]
    peaks: list[float]
    timings: dict[str, float]
    footer: str


def prompt_maps(session: Any, run_: Run, prompt: str, index: int, *, seed: int, off: Any, on: Any,
                wanted: list[str] | None, max_tokens: int, extra: dict[str, Any], notes: list[str],
                cond_index: Callable[[int], int], generate_one: Callable[..., Any], progress: Any,
                queries: Callable[[int], slice] | None = None, **sidecar: Any) -> PromptMaps:
    """One prompt generated with PLADIS off and on while recording its per-token maps: writes the figure
    (with its sidecar, plus ``sidecar`` entries) and the raw maps (.npz) into ``run_``."""
    import numpy as np

    from ._attention_maps import AttentionMapStore, install_recorders, key_tokens
    from ._grid import make_grid

    name = stem(index, prompt)
    results = {}
    for variant in ("baseline", "pladis"):
        store = AttentionMapStore(cond_index, queries)
        handle = session.apply(on)
        install_recorders(handle, store, baseline=variant == "baseline")
        try:
            image, seconds = generate_one(prompt, seed, progress, extra)
        finally:
            handle.remove()
        results[variant] = (image, seconds, store.maps(image.height, image.width), store)
    keys = results["baseline"][2].shape[0]
    tokens = key_tokens(session.pipe, prompt, keys)
    if wanted:
        tokens = [t for t in tokens if t[1].lower() in wanted]
    tokens = tokens[:max_tokens]
    rows, arrays = [], {}
    for variant, (_image, _seconds, maps, _store) in results.items():
        arrays[variant] = maps[[p for p, _ in tokens]].numpy() if tokens else np.zeros((0,) + maps.shape[1:])
    peaks = [max(float(arrays[v][t].max()) for v in arrays) or 1.0 for t in range(len(tokens))]
    for variant, (image, *_rest) in results.items():
        display = image.resize(_display_size(image), resample=0)
        rows.append([display] + [overlay(display, arrays[variant][t] / peaks[t]) for t in range(len(tokens))]
                    + [colour_bar(*display.size, top="token peak")])
    store = results["pladis"][3]
    footer = (f"seed {seed} · {session.caption()} · head-averaged cross-attention of the conditional "
              f"branch, mean over {store.steps} steps and {len(store.sums)} layers; colour scale per token "
              f"shared by both rows" + "".join(f" · {n}" for n in notes))
    grid, layout = make_grid(rows, col_labels=["image"] + [text for _, text in tokens] + ["colour scale"],
                             row_labels=[off.label(), on.label()], title=prompt, footer=footer,
                             min_cell=DISPLAY_SIDE)
    npz = run_.out / f"{name}-maps.npz"
    np.savez_compressed(npz, baseline=arrays["baseline"], pladis=arrays["pladis"],
                        tokens=np.array([t for _, t in tokens]), positions=np.array([p for p, _ in tokens]))
    run_.add_file(npz)
    timings = {"generate_s": round(results["baseline"][1] + results["pladis"][1], 4),
               "baseline_s": round(results["baseline"][1], 4), "pladis_s": round(results["pladis"][1], 4)}
    path = run_.save(grid, f"{name}-maps", run_.sidecar(
        session, prompt=prompt, seed=seed, **sidecar, pladis=on.as_dict(), baseline=off.as_dict(),
        tokens=[{"position": p, "text": t} for p, t in tokens], maps_file=npz.name,
        recorded={"steps": store.steps, "layers": sorted(store.sums), "map_size": list(arrays["pladis"].shape[1:])},
        notes=notes, grid=layout, timings=timings,
    ))
    return PromptMaps(path, npz, tokens, peaks, timings, footer)


def _cond_index(pipe: Any, batch: int) -> int:
    """Index of the conditional branch in the denoiser batch: [uncond, cond, (perturbed)] under CFG."""
    return 1 if batch > 1 and bool(getattr(pipe, "do_classifier_free_guidance", False)) else 0


def _aligned_keys(pipe: Any, call_args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Call kwargs that make cross-attention keys the prompt's tokens (SANA: no complex instruction)."""
    params = inspect.signature(type(pipe).__call__).parameters
    if "complex_human_instruction" in params and "complex_human_instruction" not in call_args:
        return {"complex_human_instruction": None}, [
            "complex_human_instruction off so that attention keys are the prompt's tokens"]
    return {}, []


def _check_tokens(tokenizer: Any, prompts: list[str], wanted: list[str], *, pipe: Any = None) -> None:
    """``--tokens``: at least one wanted word is a token of every prompt (of ``pipe``'s text keys, see
    :func:`pladis.cli._attention_maps.key_tokens`, when given)."""
    from ._attention_maps import key_tokens, prompt_tokens

    limit = min(int(getattr(tokenizer, "model_max_length", 77) or 77), 512)
    for prompt in prompts:
        found = key_tokens(pipe, prompt) if pipe is not None else prompt_tokens(tokenizer, prompt, limit)
        texts = [text.lower() for _, text in found]
        missing = [w for w in wanted if w not in texts]
        if len(missing) == len(wanted):
            raise UsageError(f"--tokens: none of {missing} is a token of {prompt!r}; its tokens are {texts}")


def _display_size(image: Any) -> tuple[int, int]:
    factor = max(1, -(-DISPLAY_SIDE // image.width))
    return image.width * factor, image.height * factor
