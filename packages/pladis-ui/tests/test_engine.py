"""The engine on the embedded toy model: the page's images are `pladis compare`'s, requests run one at a
time, and a cancelled or failed request leaves the pipeline with its original processors."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

import pladis
from pladis.adapters import find_denoiser

PROMPT = "a red circle left of a blue square"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def processors(engine) -> dict:
    return dict(find_denoiser(engine.session.pipe).attn_processors)


def same_processors(engine, before: dict) -> bool:
    after = processors(engine)
    return after.keys() == before.keys() and all(after[name] is before[name] for name in before)


def test_compare_images_are_the_cli_compare_images(engine, cli_compare):
    job = engine.wait(engine.submit({"prompt": PROMPT, "steps": "2", "seed": "3"}))
    assert job.status == "done", job.message
    expected = cli_compare(PROMPT, "--steps", "2", "--seed", "3")
    images = {image["variant"]: image for image in job.result["images"]}
    for variant in ("baseline", "pladis"):
        np.testing.assert_array_equal(pixels(job.files[images[variant]["file"]]), pixels(expected[variant]))
    assert not np.array_equal(pixels(expected["baseline"]), pixels(expected["pladis"]))
    sidecar = json.loads(job.files[images["pladis"]["sidecar"]].read_text())
    cli_sidecar = json.loads(expected["pladis"].with_suffix(".json").read_text())
    for key in ("pladis", "pladis_layers", "sampling", "model", "seed", "prompt"):
        assert sidecar[key] == cli_sidecar[key], key
    assert sidecar["command"] == "ui compare" and sidecar["request"]["steps"] == "2"
    assert images["baseline"]["settings"]["enabled"] is False and images["pladis"]["settings"]["scale"] == 2.0
    assert images["pladis"]["pladis_layers"] == sidecar["pladis_layers"] > 0


def test_requests_run_one_at_a_time_in_arrival_order(engine, monkeypatch):
    events: list[tuple[str, str]] = []
    original = type(engine.session).generate

    def recording(session, prompt, seed, progress=None, extra=None):
        events.append(("start", prompt))
        time.sleep(0.05)  # widen the window in which an interleaved call would show
        try:
            return original(session, prompt, seed, progress, extra)
        finally:
            events.append(("end", prompt))

    monkeypatch.setattr(type(engine.session), "generate", recording)
    jobs = []
    threads = [threading.Thread(target=lambda i=i: jobs.append(engine.submit({"prompt": f"p{i}", "steps": "1"})))
               for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        assert engine.wait(job).status == "done", job.message
    order = sorted(jobs, key=lambda job: job.submitted)
    prompts = [f"p{job.args.prompt[1]}" for job in order]
    assert events == [(edge, p) for p in prompts for edge in ("start", "end", "start", "end")]


def test_queued_request_reports_its_position_and_can_be_dropped(engine):
    first = engine.submit({"prompt": PROMPT, "steps": "60"})
    second = engine.submit({"prompt": PROMPT, "steps": "1"})
    assert engine.snapshot(second)["position"] == 1
    engine.cancel(second.id)
    engine.cancel(first.id)
    engine.wait(first)
    assert engine.wait(second).status == "cancelled" and second.files == {}


@pytest.mark.parametrize("fields", [{}, {"guidance": "pag", "pag_scale": "2"}, {"guidance": "seg", "seg_scale": "2"}],
                         ids=["cfg", "pag", "seg"])
def test_cancel_while_running_restores_the_original_processors(engine, fields):
    before = processors(engine)
    job = engine.submit({"prompt": PROMPT, "steps": str(200), **fields})
    deadline = time.monotonic() + 120
    while job.progress < 0.55 and job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.01)  # until it is inside the PLADIS-on image
    assert job.status == "running", (job.status, job.message, job.progress)
    engine.cancel(job.id)
    assert engine.wait(job, timeout=120).status == "cancelled", (job.status, job.message)
    assert same_processors(engine, before), {name: type(p).__name__ for name, p in processors(engine).items()}
    assert getattr(find_denoiser(engine.session.pipe), "_pladis_handle", None) is None
    assert job.files == {}


def test_failure_is_reported_and_runs_nothing(engine, monkeypatch):
    calls = []
    monkeypatch.setattr(type(engine.session), "generate", lambda *a, **k: calls.append(a))
    before = processors(engine)
    job = engine.wait(engine.submit({"prompt": PROMPT, "steps": "2", "layers": "sideways"}))
    assert job.status == "failed" and "sideways" in job.message
    assert calls == [] and job.files == {} and same_processors(engine, before)


def test_sweep_grid_holds_every_cell(engine):
    job = engine.wait(engine.submit({"kind": "sweep", "prompt": PROMPT, "steps": "2", "scales": "0,2",
                                     "alphas": "1.5,2"}))
    assert job.status == "done", job.message
    sidecar = json.loads(job.files[job.result["sidecar"]].read_text())
    assert sidecar["grid"]["rows"] == 2 and sidecar["grid"]["cols"] == 2
    cells = {(c["row"], c["col"]): c for c in job.result["cells"]}
    assert cells[0, 0]["shared_baseline"] and cells[1, 0]["shared_baseline"]
    assert cells[1, 1]["pladis"]["alpha"] == 2.0 and cells[1, 1]["pladis"]["scale"] == 2.0
    grid = pixels(job.files[job.result["grid"]])
    boxes = sidecar["grid"]["boxes"]
    crop = [grid[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
    np.testing.assert_array_equal(crop[0], crop[2])  # λ = 0 is one image shown in both rows
    assert not np.array_equal(crop[1], crop[3])  # α = 1.5 and α = 2 differ at λ = 2


def test_maps_match_the_cli_maps(engine, tmp_path):
    from pladis.cli import main

    job = engine.wait(engine.submit({"kind": "maps", "prompt": PROMPT, "steps": "2", "tokens": "circle,square"}))
    assert job.status == "done", job.message
    assert [t["text"] for t in job.result["tokens"]] == ["circle", "square"]
    assert main(["maps", PROMPT, "--steps", "2", "--tokens", "circle,square", "--out", str(tmp_path), "-q"]) == 0
    ours = np.load(job.files[job.result["maps_file"]])
    theirs = np.load(next(tmp_path.glob("*-maps.npz")))
    for key in ("baseline", "pladis"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    assert not np.allclose(ours["baseline"], ours["pladis"])
    np.testing.assert_array_equal(pixels(job.files[job.result["grid"]]), pixels(next(tmp_path.glob("*-maps.png"))))
    assert all(t["peak"] == pytest.approx(max(ours["baseline"][i].max(), ours["pladis"][i].max()), rel=1e-5)
               for i, t in enumerate(job.result["tokens"]))


def test_pladis_is_removed_after_every_request(engine):
    engine.wait(engine.submit({"prompt": PROMPT, "steps": "1"}))
    assert not pladis.remove(engine.session.pipe)  # nothing was left to remove
