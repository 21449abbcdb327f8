"""The HTTP API: bad input answers 400 with the field's message and queues nothing; only a request's
own files are served; the page names nothing outside the server."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from pladis_ui.command import bind_note
from pladis_ui.server import start_server


def test_bad_input_is_a_400_naming_the_field_and_queues_nothing(server, engine, http):
    jobs = len(engine.jobs)
    status, body, _ = http(f"{server}/api/jobs", {"prompt": "a cat", "scale": "lots"})
    assert status == 400 and body == {"error": "λ (scale): 'lots' is not a number", "field": "scale"}
    status, body, _ = http(f"{server}/api/jobs", {"prompt": ""})
    assert status == 400 and body["field"] == "prompt"
    status, body, _ = http(f"{server}/api/jobs", {"prompt": "a cat", "steps": "1000000"})
    assert status == 400 and body["error"] == "steps: must be in [1, 200] on this page; got 1000000"
    status, body, _ = http(f"{server}/api/jobs", ["not", "an", "object"])
    assert status == 400 and body["field"] == "form"
    assert len(engine.jobs) == jobs


def test_a_request_runs_and_serves_only_its_own_files(server, engine, http):
    status, job, _ = http(f"{server}/api/jobs", {"prompt": "a blue square", "steps": "1"})
    assert status == 202 and job["status"] in ("queued", "running")
    engine.wait(engine.jobs[job["id"]])
    status, job, _ = http(f"{server}/api/jobs/{job['id']}")
    assert status == 200 and job["status"] == "done" and job["progress"] == 1.0
    name = job["result"]["images"][1]["file"]
    with urllib.request.urlopen(f"{server}/files/{job['id']}/{name}") as response:
        assert response.headers["Content-Type"] == "image/png" and response.read()[:8] == b"\x89PNG\r\n\x1a\n"
    for path in (f"/files/{job['id']}/..%2F..%2Fetc%2Fpasswd", f"/files/{job['id']}/other.png",
                 "/files/nojob/x.png", "/static/../engine.py", "/api/jobs/nojob"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server + path)
        assert caught.value.code == 404, path


def test_the_page_loads_nothing_from_elsewhere(server):
    with urllib.request.urlopen(server + "/") as response:
        html = response.read().decode()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    with urllib.request.urlopen(server + "/static/app.js") as response:
        script = response.read().decode()
    with urllib.request.urlopen(server + "/static/style.css") as response:
        style = response.read().decode()
    for text in (html, script, style):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.IGNORECASE)


def test_info_describes_the_loaded_model(server, http):
    status, info, _ = http(f"{server}/api/info")
    assert status == 200
    assert info["model"]["source"] == "embedded:toy" and info["model"]["backbone"] == "sd15"
    assert info["defaults"]["steps"] == 20 and info["defaults"]["guidance_scale"] == 1.0
    assert info["guidance"] == {"pag": True, "seg": True}
    assert {"down", "mid", "up"} <= set(info["layer_groups"])


def test_a_taken_port_is_one_clear_error(engine, server):
    from pladis.cli._errors import CLIError

    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(CLIError, match=rf"cannot listen on 127\.0\.0\.1:{port}: "):
        start_server(engine, "127.0.0.1", port)


def test_bind_note_says_who_can_reach_the_page():
    assert bind_note("127.0.0.1") == "bound to 127.0.0.1, reachable from this machine only"
    assert "reachable from other machines" in bind_note("0.0.0.0")
