"""The HTTP side: the page, its JSON API and the files each request wrote (standard library only).

    GET  /                        the page (static/index.html; its script and style from /static/)
    GET  /api/info                the loaded model, its defaults, the guidance it offers, the page's limits
    POST /api/jobs                queue a request (JSON form fields); 400 {"error", "field"} if a field is bad
    GET  /api/jobs/<id>           a request's status, progress, queue position and result
    POST /api/jobs/<id>/cancel    cancel it (queued: dropped; running: stopped at the next step)
    GET  /files/<id>/<name>       an image, sidecar or .npz the request wrote

The page loads nothing from elsewhere (its Content-Security-Policy says so to the browser too).
"""

from __future__ import annotations

import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from pladis.cli._errors import CLIError

from . import forms
from .engine import Engine

STATIC = ("index.html", "app.js", "style.css")
MAX_BODY = 64 * 1024
CSP = "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'"


def start_server(engine: Engine, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to ``host``:``port`` (0 = a free port), not yet serving; one line if it cannot bind."""
    handler = type("Handler", (PageHandler,), {"engine": engine})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise CLIError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """``server.serve_forever()`` on a daemon thread (stop it with ``server.shutdown()``)."""
    thread = threading.Thread(target=server.serve_forever, name="pladis-ui-http", daemon=True)
    thread.start()
    return thread


def info(engine: Engine) -> dict[str, Any]:
    """What the page needs to know about the loaded model and its own limits."""
    from pladis.cli._grid import _ANCHORS
    from pladis.cli._options import (
        DEFAULT_ALPHA,
        DEFAULT_SCALE,
        DEFAULT_SWEEP_ALPHAS,
        DEFAULT_SWEEP_SCALES,
        DEFAULT_TEMPERATURE,
    )

    session = engine.session
    stops = ", ".join(f"rgb{colour} {stop * 100:g}%" for stop, colour in _ANCHORS)
    return {
        "model": session.describe()["model"],
        "caption": session.caption(),
        "layer_groups": sorted(session.spec.layer_groups),
        "guidance": engine.guidance,
        "defaults": {
            "seed": 0, "steps": session.steps, "guidance_scale": session.call_kwargs.get("guidance_scale"),
            "scale": DEFAULT_SCALE, "alpha": DEFAULT_ALPHA, "temperature": DEFAULT_TEMPERATURE,
            "layers": "all", "start": 0.0, "end": 1.0,
            "scales": ",".join(f"{s:g}" for s in DEFAULT_SWEEP_SCALES),
            "alphas": ",".join(f"{a:g}" for a in DEFAULT_SWEEP_ALPHAS),
        },
        "limits": {"max_steps": forms.MAX_STEPS, "max_sweep_cells": forms.MAX_SWEEP_CELLS,
                   "max_tokens": forms.MAX_TOKENS},
        "colorbar": f"linear-gradient(to right, {stops})",
    }


class PageHandler(BaseHTTPRequestHandler):
    engine: Engine
    server_version = "pladis-ui"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: the terminal shows the server's address only

    # --- routes -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = self._parts()
        if parts in ([], ["index.html"]):
            self._static("index.html")
        elif len(parts) == 2 and parts[0] == "static" and parts[1] in STATIC:
            self._static(parts[1])
        elif parts == ["api", "info"]:
            self._json(info(self.engine))
        elif len(parts) == 3 and parts[:2] == ["api", "jobs"] and parts[2] in self.engine.jobs:
            self._json(self.engine.snapshot(self.engine.jobs[parts[2]]))
        elif len(parts) == 3 and parts[0] == "files" and parts[1] in self.engine.jobs:
            self._file(self.engine.jobs[parts[1]], parts[2])
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        parts = self._parts()
        if parts == ["api", "jobs"]:
            body = self._body()
            if body is None:
                return
            try:
                job = self.engine.submit(body)
            except forms.FormError as error:
                self._json({"error": error.message, "field": error.field}, HTTPStatus.BAD_REQUEST)
                return
            self._json(self.engine.snapshot(job), HTTPStatus.ACCEPTED)
        elif len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] == "cancel" \
                and parts[2] in self.engine.jobs:
            self._json(self.engine.snapshot(self.engine.cancel(parts[2])))
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    # --- helpers ------------------------------------------------------------------------------------

    def _parts(self) -> list[str]:
        return [unquote(part) for part in urlsplit(self.path).path.split("/") if part]

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json({"error": f"the request body must be JSON of 1 to {MAX_BODY} bytes", "field": "form"},
                       HTTPStatus.BAD_REQUEST)
            return None
        try:
            return json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._json({"error": "the request body is not JSON", "field": "form"}, HTTPStatus.BAD_REQUEST)
            return None

    def _send(self, status: int, content_type: str, data: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, value: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(value, default=str).encode("utf-8"))

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _static(self, name: str) -> None:
        data = resources.files("pladis_ui").joinpath("static", name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, f"{kind}; charset=utf-8", data)

    def _file(self, job: Any, name: str) -> None:
        path = job.files.get(name)  # only what the request wrote, by its own name
        if path is None or not path.is_file():
            self._error(HTTPStatus.NOT_FOUND, "no such file for this request")
            return
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        extra = {} if kind.startswith("image/") else {"Content-Disposition": f'attachment; filename="{name}"'}
        self._send(HTTPStatus.OK, kind, path.read_bytes(), extra)
