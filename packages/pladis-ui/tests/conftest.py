"""Fixtures: the ``pladis ui`` engine on the embedded toy model, and its server on a free localhost port."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pladis_ui import command


def ui_args(*argv: str) -> argparse.Namespace:
    """The namespace ``pladis ui ARGV`` parses to."""
    parser = argparse.ArgumentParser(prog="pladis")
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["ui", *argv])


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    from pladis_ui.engine import Engine

    engine = Engine.load(ui_args("--out", str(tmp_path_factory.mktemp("ui-out"))))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def server(engine):
    from pladis_ui.server import serve_in_thread, start_server

    server = start_server(engine, "127.0.0.1", 0)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _request(url: str, body: dict | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a GET, or of a POST of ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


@pytest.fixture
def http():
    """``http(url, body=None)``: (status, JSON body, headers) of a GET, or of a POST of ``body``."""
    return _request


@pytest.fixture
def cli_compare(tmp_path):
    """``cli_compare(prompt, *argv)``: ``pladis compare`` run through the CLI; its two images."""
    from pladis.cli import main

    def run(prompt: str, *argv: str) -> dict[str, Path]:
        out = tmp_path / "cli-compare"
        assert main(["compare", prompt, "--out", str(out), "-q", *argv]) == 0
        return {"baseline": next(out.glob("00-*-baseline.png")), "pladis": next(out.glob("00-*-pladis.png"))}

    return run
