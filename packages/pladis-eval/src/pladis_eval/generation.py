"""Generating a benchmark's prompt × seed × setting grid with the CLI's own session and output code.

Each image is ``OUT/images/<setting>/<prompt index>-s<seed>.png`` with its sidecar (``pladis.cli._output.Run``);
a job whose sidecar and image are both on disk is skipped, so an interrupted run resumes where it stopped
(the sidecar is written after the image: an image without one is made again). Each process appends the
jobs it generated to ``OUT/shards/process-R-of-N.txt``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from .settings import Setting
from .sharding import Shard


@dataclass(frozen=True)
class Job:
    setting: Setting
    prompt_index: int
    prompt: str
    seed: int

    @property
    def name(self) -> str:
        """The image's path under OUT, without suffix."""
        return f"images/{self.setting.slug}/{self.prompt_index:05d}-s{self.seed}"

    def done(self, out: Path) -> bool:
        return (out / f"{self.name}.json").is_file() and (out / f"{self.name}.png").is_file()


def grid_jobs(settings: Sequence[Setting], prompts: Sequence[str], seeds: Sequence[int]) -> list[Job]:
    """The whole grid in a fixed order: setting, then prompt, then seed."""
    return [Job(s, i, p, seed) for s in settings for i, p in enumerate(prompts) for seed in seeds]


def family(setting: Setting) -> str:
    """The pipeline a setting runs on: SEG's own, else the main one (PAG's when any setting uses PAG,
    which with pag_scale 0 is the plain pipeline)."""
    return "seg" if setting.seg else "main"


def generate_grid(args: argparse.Namespace, jobs: Sequence[Job], shard: Shard) -> list[Job]:
    """Generate this process's share of ``jobs`` that is not on disk yet; return the jobs generated."""
    from pladis.cli import _options
    from pladis.cli._output import Run
    from pladis.cli._session import load_session

    todo = [job for job in shard.take(jobs) if not job.done(args.out)]
    if not todo:
        return []
    run_ = Run(args, "benchmark", len(todo))
    manifest = args.out / "shards" / f"process-{shard.index}-of-{shard.count}.txt"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    uses_pag = max((job.setting.pag for job in jobs), default=0.0)
    order = {s: i for i, s in enumerate(dict.fromkeys(job.setting for job in jobs))}
    todo.sort(key=lambda job: (family(job.setting), order[job.setting]))
    done = []
    for kind, family_jobs in groupby(todo, key=lambda job: family(job.setting)):
        family_jobs = list(family_jobs)
        session = load_session(_session_args(args, kind, uses_pag, family_jobs[0].setting))
        for setting, setting_jobs in groupby(family_jobs, key=lambda job: job.setting):
            pladis = _options.pladis_settings(args, scale=setting.pladis, alpha=setting.alpha)
            handle = session.apply(pladis)
            extra = _call_extra(setting, kind, uses_pag)
            for job in setting_jobs:
                image, seconds = session.generate(job.prompt, job.seed, run_.progress, extra)
                record = run_.sidecar(
                    session, prompt=job.prompt, seed=job.seed, prompt_index=job.prompt_index,
                    setting=setting.as_dict(), setting_label=setting.label, pladis=pladis.as_dict(),
                    pladis_layers=len(handle.layer_names) if handle else 0,
                    shard={"index": shard.index, "count": shard.count}, timings={"generate_s": round(seconds, 4)})
                record["sampling"] = {**record["sampling"], **{k: v for k, v in extra.items() if k == "guidance_scale"}}
                record["guidance"] = {k: v for k, v in {**record["guidance"], **extra}.items() if k != "guidance_scale"}
                (args.out / job.name).parent.mkdir(parents=True, exist_ok=True)
                run_.save(image, job.name, record)
                with manifest.open("a", encoding="utf-8") as log:
                    log.write(job.name + "\n")
                done.append(job)
    run_.progress.close()
    return done


def _session_args(args: argparse.Namespace, kind: str, uses_pag: float, first: Setting) -> argparse.Namespace:
    """``args`` for ``load_session``: the pipeline kind of the family (PAG, SEG or plain)."""
    session_args = copy.copy(args)
    session_args.seed = 0
    session_args.guidance_scale = None
    session_args.pag_scale = uses_pag if kind == "main" else 0.0
    session_args.seg_scale = first.seg if kind == "seg" else 0.0
    if kind != "seg":
        session_args.seg_layers = session_args.seg_blur_sigma = None
    return session_args


def _call_extra(setting: Setting, kind: str, uses_pag: float) -> dict[str, float]:
    extra: dict[str, float] = {}
    if setting.cfg is not None:
        extra["guidance_scale"] = setting.cfg
    if kind == "seg":
        extra["seg_scale"] = setting.seg
    elif uses_pag:
        extra["pag_scale"] = setting.pag
    return extra
