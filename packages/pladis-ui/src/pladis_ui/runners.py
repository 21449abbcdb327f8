"""What each tab of the page runs: the loops of ``pladis compare``, ``sweep`` and ``maps`` for one
prompt, on the engine's loaded session, writing the same images and sidecars (one folder per request).

Each runner returns the result the page shows: file names (served under ``/files/<job>/``), the
settings and timings of every image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pladis.cli import _options
from pladis.cli._grid import make_grid
from pladis.cli._output import stem

from .forms import MAX_TOKENS


def _checked(session: Any, settings: Any) -> int:
    """Apply ``settings`` once before anything is generated (a bad layer selection fails here, with
    nothing run); the number of layers PLADIS replaces."""
    handle = session.apply(settings)
    layers = len(handle.layer_names) if handle is not None else 0
    session.apply(dataclasses.replace(settings, scale=0.0))  # λ = 0: PLADIS removed again
    return layers


def _register(job: Any, run: Any) -> None:
    job.files = {path.name: path for path in run.written}


def compare(engine: Any, job: Any) -> dict[str, Any]:
    """PLADIS off, then on, from the same seed: ``pladis compare``'s two images and sidecars."""
    args = job.args
    session = engine.session_for(args)
    off, on = _options.pladis_settings(args, scale=0.0), _options.pladis_settings(args)
    run, progress = engine.output(job, 2)
    layers = _checked(session, on)  # and PLADIS off again
    baseline, t_off = session.generate(args.prompt, args.seed, progress)
    session.apply(on)
    boosted, t_on = session.generate(args.prompt, args.seed, progress)
    name = stem(0, args.prompt)
    common = {"prompt": args.prompt, "seed": args.seed, "request": job.request}
    images = []
    for variant, image, settings, seconds, count in (("baseline", baseline, off, t_off, 0),
                                                     ("pladis", boosted, on, t_on, layers)):
        path = run.save(image, f"{name}-{variant}", run.sidecar(
            session, **common, pladis_layers=count, pladis=settings.as_dict(),
            timings={"generate_s": round(seconds, 4)}))
        images.append({"variant": variant, "label": settings.label(), "file": path.name,
                       "sidecar": path.with_suffix(".json").name, "settings": settings.as_dict(),
                       "pladis_layers": count, "generate_s": round(seconds, 4), "size": list(image.size)})
    _register(job, run)
    return {"images": images, "caption": f"seed {args.seed} · {session.caption()}"}


def sweep(engine: Any, job: Any) -> dict[str, Any]:
    """The λ × α grid of ``pladis sweep`` (λ = 0 generated once and shown in every row)."""
    from pladis.cli.sweep import _row_label

    args = job.args
    session = engine.session_for(args)
    scales, alphas = args.scales, args.alphas
    settings = {(a, s): _options.pladis_settings(args, scale=s, alpha=a) for a in alphas for s in scales}
    jobs = [(alphas[0], 0.0)] if 0.0 in scales else []
    jobs += [(a, s) for a in alphas for s in scales if s != 0.0]
    run, progress = engine.output(job, len(jobs))
    if any(s != 0.0 for s in scales):
        _checked(session, settings[alphas[0], next(s for s in scales if s != 0.0)])
    results = {}
    for alpha, scale in jobs:
        session.apply(settings[alpha, scale])
        results[alpha, scale] = session.generate(args.prompt, args.seed, progress)
    rows, cells = [], []
    for r, alpha in enumerate(alphas):
        row = []
        for c, scale in enumerate(scales):
            image, seconds = results[(alphas[0], 0.0) if scale == 0.0 else (alpha, scale)]
            row.append(image)
            cells.append({"row": r, "col": c, "pladis": settings[alpha, scale].as_dict(),
                          "generate_s": round(seconds, 4), "shared_baseline": scale == 0.0})
        rows.append(row)
    grid, layout = make_grid(
        rows, col_labels=[f"lambda={s:g}" + (" (off)" if s == 0 else "") for s in scales],
        row_labels=[_row_label(a) for a in alphas], title=args.prompt,
        footer=f"seed {args.seed} · {session.caption()}",
    )
    total = sum(seconds for _, seconds in results.values())
    path = run.save(grid, f"{stem(0, args.prompt)}-sweep", run.sidecar(
        session, prompt=args.prompt, seed=args.seed, request=job.request, scales=scales, alphas=alphas,
        pladis={"temperature": args.temperature, "layers": args.layers, "start": args.start, "end": args.end},
        grid=layout, cells=cells, timings={"generate_s": round(total, 4)}))
    _register(job, run)
    return {"grid": path.name, "sidecar": path.with_suffix(".json").name, "cells": cells,
            "generate_s": round(total, 4), "caption": f"seed {args.seed} · {session.caption()}"}


def maps(engine: Any, job: Any) -> dict[str, Any]:
    """Per-token cross-attention maps off vs on, as ``pladis maps`` records them (the paper's Fig. 10)."""
    import numpy as np

    from pladis.cli._attention_maps import AttentionMapStore, install_recorders, prompt_tokens
    from pladis.cli._grid import colour_bar, overlay
    from pladis.cli.maps import DISPLAY_SIDE, _aligned_keys, _check_tokens, _cond_index, _display_size

    args = job.args
    session = engine.session_for(args)
    pipe, tokenizer = session.pipe, getattr(session.pipe, "tokenizer", None)
    if args.tokens and tokenizer is not None:
        _check_tokens(tokenizer, [args.prompt], args.tokens)
    extra, notes = _aligned_keys(pipe, {})
    off, on = _options.pladis_settings(args, scale=0.0), _options.pladis_settings(args)
    run, progress = engine.output(job, 2)
    results = {}
    for variant in ("baseline", "pladis"):
        store = AttentionMapStore(lambda batch: _cond_index(pipe, batch))
        handle = session.apply(on)
        install_recorders(handle, store, baseline=variant == "baseline")
        try:
            image, seconds = session.generate(args.prompt, args.seed, progress, extra)
        finally:
            handle.remove()
        results[variant] = (image, seconds, store.maps(image.height, image.width), store)
    keys = results["baseline"][2].shape[0]
    tokens = prompt_tokens(tokenizer, args.prompt, keys) if tokenizer is not None else \
        [(i, f"#{i}") for i in range(keys)]
    if args.tokens:
        tokens = [t for t in tokens if t[1].lower() in args.tokens]
    tokens = tokens[:MAX_TOKENS]
    arrays = {variant: maps_[[p for p, _ in tokens]].numpy() if tokens else np.zeros((0,) + maps_.shape[1:])
              for variant, (_image, _seconds, maps_, _store) in results.items()}
    peaks = [max(float(arrays[v][t].max()) for v in arrays) or 1.0 for t in range(len(tokens))]
    rows = []
    for variant, (image, *_rest) in results.items():
        display = image.resize(_display_size(image), resample=0)
        rows.append([display] + [overlay(display, arrays[variant][t] / peaks[t]) for t in range(len(tokens))]
                    + [colour_bar(*display.size, top="token peak")])
    store = results["pladis"][3]
    footer = (f"seed {args.seed} · {session.caption()} · head-averaged cross-attention of the conditional "
              f"branch, mean over {store.steps} steps and {len(store.sums)} layers; colour scale per token "
              f"shared by both rows" + "".join(f" · {n}" for n in notes))
    grid, layout = make_grid(rows, col_labels=["image"] + [text for _, text in tokens] + ["colour scale"],
                             row_labels=[off.label(), on.label()], title=args.prompt, footer=footer,
                             min_cell=DISPLAY_SIDE)
    name = stem(0, args.prompt)
    npz = run.out / f"{name}-maps.npz"
    np.savez_compressed(npz, baseline=arrays["baseline"], pladis=arrays["pladis"],
                        tokens=np.array([t for _, t in tokens]), positions=np.array([p for p, _ in tokens]))
    run.add_file(npz)
    timings = {"generate_s": round(results["baseline"][1] + results["pladis"][1], 4),
               "baseline_s": round(results["baseline"][1], 4), "pladis_s": round(results["pladis"][1], 4)}
    path = run.save(grid, f"{name}-maps", run.sidecar(
        session, prompt=args.prompt, seed=args.seed, request=job.request, pladis=on.as_dict(),
        baseline=off.as_dict(), tokens=[{"position": p, "text": t} for p, t in tokens], maps_file=npz.name,
        recorded={"steps": store.steps, "layers": sorted(store.sums), "map_size": list(arrays["pladis"].shape[1:])},
        notes=notes, grid=layout, timings=timings))
    _register(job, run)
    return {"grid": path.name, "sidecar": path.with_suffix(".json").name, "maps_file": npz.name,
            "tokens": [{"position": p, "text": t, "peak": round(peak, 6)} for (p, t), peak in zip(tokens, peaks, strict=True)],
            "timings": timings, "caption": footer}


RUNNERS = {"compare": compare, "sweep": sweep, "maps": maps}
