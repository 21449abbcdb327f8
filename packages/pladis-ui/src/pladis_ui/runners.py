"""What each tab of the page runs: the loops of ``pladis compare``, ``sweep`` and ``maps`` for one
prompt, on the engine's loaded session, writing the same images and sidecars (one folder per request).

Each runner returns the result the page shows: file names (served under ``/files/<job>/``), the
settings and timings of every image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pladis.cli import _options
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
    from pladis.cli.sweep import save_sweep, sweep_jobs

    args = job.args
    session = engine.session_for(args)
    settings, jobs = sweep_jobs(args)
    run, progress = engine.output(job, len(jobs))
    if any(scale != 0.0 for _, scale in jobs):
        _checked(session, settings[next((a, s) for a, s in jobs if s != 0.0)])
    results = {}
    for alpha, scale in jobs:
        session.apply(settings[alpha, scale])
        results[alpha, scale] = session.generate(args.prompt, args.seed, progress)
    path, cells, total = save_sweep(session, run, args, args.prompt, 0, settings, results, request=job.request)
    _register(job, run)
    return {"grid": path.name, "sidecar": path.with_suffix(".json").name, "cells": cells,
            "generate_s": round(total, 4), "caption": f"seed {args.seed} · {session.caption()}"}


def maps(engine: Any, job: Any) -> dict[str, Any]:
    """Per-token cross-attention maps off vs on, as ``pladis maps`` records them (the paper's Fig. 10)."""
    from pladis.cli.maps import _aligned_keys, _check_tokens, _cond_index, prompt_maps

    args = job.args
    session = engine.session_for(args)
    pipe, tokenizer = session.pipe, getattr(session.pipe, "tokenizer", None)
    if args.tokens and tokenizer is not None:
        _check_tokens(tokenizer, [args.prompt], args.tokens, pipe=pipe)
    extra, notes = _aligned_keys(pipe, {})
    off, on = _options.pladis_settings(args, scale=0.0), _options.pladis_settings(args)
    run, progress = engine.output(job, 2)
    result = prompt_maps(session, run, args.prompt, 0, seed=args.seed, off=off, on=on, wanted=args.tokens,
                         max_tokens=MAX_TOKENS, extra=extra, notes=notes,
                         cond_index=lambda batch: _cond_index(pipe, batch), generate_one=session.generate,
                         progress=progress, request=job.request)
    _register(job, run)
    return {"grid": result.grid.name, "sidecar": result.grid.with_suffix(".json").name,
            "maps_file": result.npz.name,
            "tokens": [{"position": p, "text": t, "peak": round(peak, 6)}
                       for (p, t), peak in zip(result.tokens, result.peaks, strict=True)],
            "timings": result.timings, "caption": result.footer}


RUNNERS = {"compare": compare, "sweep": sweep, "maps": maps}
