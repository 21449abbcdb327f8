"""The model loaded once, and the queue of page requests that run on it one at a time.

PLADIS settings are per-pipeline state, so every request runs on one worker thread, in arrival
order, never interleaved with another. Before a request runs, the denoiser's attention processors
are noted; afterwards — done, failed or cancelled — PLADIS is removed and, if anything else is left
over (a PAG or SEG processor of a run stopped half-way), the noted processors are put back.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pladis.cli import _session
from pladis.cli._errors import CLIError, UsageError, one_line
from pladis.cli._output import Run

from . import runners
from .forms import FormError, parse_request

STATUSES = ("queued", "running", "done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside the denoising loop when the page cancels the running request."""


@dataclasses.dataclass
class Job:
    """One page request: its checked settings, state, progress and the files it wrote."""

    id: str
    kind: str
    args: argparse.Namespace
    request: dict[str, Any]
    folder: Path
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    result: dict[str, Any] | None = None
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    submitted: float = dataclasses.field(default_factory=time.time)
    elapsed_s: float | None = None


class JobProgress:
    """The ``progress`` object of ``Session.generate``: step-level progress, and the cancel check."""

    def __init__(self, job: Job, images: int) -> None:
        self.job, self.images, self.done = job, images, 0

    def on_step(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.job.cancel.is_set():
            raise Cancelled
        total = getattr(pipe, "num_timesteps", None) or 1
        self.job.progress = min(1.0, (self.done + (step + 1) / total) / self.images)
        return callback_kwargs

    def advance(self) -> None:
        self.done += 1
        self.job.progress = min(1.0, self.done / self.images)
        if self.job.cancel.is_set():
            raise Cancelled


class Engine:
    """A loaded :class:`pladis.cli._session.Session` and the worker that runs page requests on it."""

    def __init__(self, session: Any, out: Path, *, backend: str = "auto") -> None:
        self.session = session
        self.out = Path(out)
        self.backend = backend
        self.jobs: dict[str, Job] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pipes: dict[tuple[str, str], Any] = {}
        self.guidance = {"pag": self._try(lambda: self.pipe_for("pag")),
                         "seg": self._try(lambda: self.pipe_for("seg", _session.SEG_LAYERS))}
        self._worker = threading.Thread(target=self._work, name="pladis-ui-worker", daemon=True)
        self._worker.start()

    @classmethod
    def load(cls, args: argparse.Namespace) -> Engine:
        """Load the model of the command line's model options once (as the other commands do)."""
        base = argparse.Namespace(
            model=args.model, backbone=args.backbone, preset=args.preset, variant=args.variant,
            load_arg=args.load_arg, device=args.device, dtype=args.dtype,
            pag_scale=0.0, seg_scale=0.0, seg_layers=None, seg_blur_sigma=None, call_arg=[],
            steps=None, guidance_scale=None, height=None, width=None, negative_prompt=None, out=args.out,
        )
        return cls(_session.load_session(base), args.out, backend=args.backend)

    # --- requests -----------------------------------------------------------------------------------

    def submit(self, values: Mapping[str, Any]) -> Job:
        """Check ``values`` (the page's fields) and queue the request; :class:`FormError` if bad."""
        args = parse_request(values, guidance=self.guidance, backend=self.backend)
        try:
            _session.check_steps(self.session.pipe, args.steps)
        except UsageError as error:
            raise FormError("steps", f"steps: {error.message}") from None
        with self._lock:
            number = next(self._counter)
            token = secrets.token_hex(3)  # ids of an earlier server on the same --out do not collide
            job_id = f"{number:03d}{token}"
            job = Job(id=job_id, kind=args.kind, args=args, request=dict(values),
                      folder=self.out / f"{number:03d}-{args.kind}-{token}")
            self.jobs[job_id] = job
        self._queue.put(job)
        return job

    def cancel(self, job_id: str) -> Job | None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is not None and job.status in ("queued", "running"):
                job.cancel.set()
                if job.status == "queued":
                    job.status, job.message = "cancelled", "cancelled before it started"
        return job

    def position(self, job: Job) -> int:
        """How many requests run before ``job`` (0 = it runs now or is next)."""
        with self._lock:
            return sum(1 for other in self.jobs.values()
                       if other.status in ("queued", "running") and other.submitted < job.submitted)

    def snapshot(self, job: Job) -> dict[str, Any]:
        """The job as the page sees it (JSON)."""
        return {"id": job.id, "kind": job.kind, "status": job.status, "progress": round(job.progress, 4),
                "position": self.position(job) if job.status == "queued" else 0, "message": job.message,
                "result": job.result, "elapsed_s": job.elapsed_s}

    def wait(self, job: Job, timeout: float = 60.0) -> Job:
        """Block until ``job`` is finished (tests and scripts)."""
        deadline = time.monotonic() + timeout
        while job.status in ("queued", "running"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job.id} still {job.status} after {timeout:g} s")
            time.sleep(0.02)
        return job

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    # --- the model ----------------------------------------------------------------------------------

    def describe_model(self) -> str:
        return self.session.caption()

    def pipe_for(self, guidance: str = "cfg", seg_layers: str | None = None) -> Any:
        """The loaded pipeline, or its PAG / SEG variant sharing the same components (made once)."""
        if guidance == "cfg":
            return self.session.pipe
        key = (guidance, seg_layers or "")
        if key not in self._pipes:
            with _session._quiet_diffusers():
                if guidance == "pag":
                    import diffusers

                    pipe = diffusers.AutoPipelineForText2Image.from_pipe(self.session.pipe, enable_pag=True)
                else:
                    from pladis.cli._loading import to_seg

                    pipe = to_seg(self.session.pipe, seg_layers or _session.SEG_LAYERS)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def session_for(self, args: argparse.Namespace) -> Any:
        """The session with the request's pipeline and call kwargs, as ``load_session`` builds them
        from a command line with the same sampling options."""
        if args.pag_scale:
            pipe = self.pipe_for("pag")
        elif args.seg_scale:
            pipe = self.pipe_for("seg", args.seg_layers)
        else:
            pipe = self.session.pipe
        call_kwargs = dict(self.session.call_kwargs)
        if args.steps is not None:
            call_kwargs.pop("timesteps", None)  # --steps overrides a preset's explicit timesteps
        guidance = _session._guidance(args)
        call_kwargs.update(_session._overrides(args), **{k: v for k, v in guidance.items() if k != "seg_layers"})
        return dataclasses.replace(self.session, pipe=pipe, call_kwargs=call_kwargs, guidance=guidance)

    def output(self, job: Job, images: int) -> tuple[Run, JobProgress]:
        """The CLI's writer of images and sidecars for ``job``'s folder, and the job's progress."""
        args = argparse.Namespace(out=job.folder, quiet=True, argv=[])
        return Run(args, f"ui {job.kind}", images), JobProgress(job, images)

    # --- the worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.cancel.is_set():
                    continue
                job.status = "running"
            self._run(job)

    def _run(self, job: Job) -> None:
        import pladis.adapters

        denoiser = pladis.adapters.find_denoiser(self.session.pipe)
        saved = denoiser.attn_processors
        started = time.perf_counter()
        try:
            job.result = runners.RUNNERS[job.kind](self, job)
            job.status, job.progress = "done", 1.0
        except Cancelled:
            job.status, job.message = "cancelled", "cancelled while running; the pipeline is unchanged"
        except CLIError as error:
            job.status, job.message = "failed", one_line(error.message)
        except Exception as error:  # a runtime failure of the pipeline: shown in the page
            job.status, job.message = "failed", one_line(f"{type(error).__name__}: {error}")
        finally:
            job.elapsed_s = round(time.perf_counter() - started, 4)
            self._restore(denoiser, saved)

    def _restore(self, denoiser: Any, saved: dict[str, Any]) -> None:
        import pladis

        pladis.remove(denoiser)
        current = denoiser.attn_processors
        if current.keys() != saved.keys() or any(current[name] is not saved[name] for name in saved):
            denoiser.set_attn_processor(dict(saved))

    @staticmethod
    def _try(make: Any) -> bool:
        try:
            make()
        except Exception:  # this model has no such pipeline variant
            return False
        return True
