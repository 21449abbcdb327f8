"""The native kernel's cache loads only what this user built (issue 18, items 1 and 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import pytest
import torch

from pladis.kernels import native

COMPILER = native._compiler()
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler on this machine")


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty private cache folder; the process-wide library is restored afterwards."""
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("PLADIS_CACHE_DIR", str(folder))
    native._library.cache_clear()
    native._failure.clear()
    yield folder
    monkeypatch.undo()
    native._library.cache_clear()
    native._failure.clear()


def _expected_name() -> str:
    version = subprocess.run([COMPILER, "--version"], capture_output=True, text=True).stdout
    return native.library_name(COMPILER, version, native._flag_sets()[0])


def _plant(path, marker, symbol: str = "planted"):
    """A shared library whose constructor writes ``marker`` (the attack) and that lacks the kernel."""
    source = path.with_suffix(".c")
    source.write_text(
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void run(void) {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
        f"int {symbol}(void) {{ return 0; }}\n"
    )
    subprocess.run([COMPILER, "-shared", "-fPIC", str(source), "-o", str(path)], check=True)
    source.unlink()


def _works() -> None:
    assert native.usable(torch.device("cpu")), native.failure()
    scores = torch.randn(1, 2, 77, 16)
    weights, _ = native.native_weights(scores.clone(), None, 2.0, 1.5, 1.0)
    assert torch.isfinite(weights).all()


def test_a_world_writable_cache_is_refused_in_one_line_and_nothing_planted_runs(cache, tmp_path):
    os.chmod(cache, 0o777)
    marker = tmp_path / "ran"
    _plant(cache / _expected_name(), marker)
    with pytest.warns(RuntimeWarning, match=r"^pladis: refusing the native kernel cache .*others can write") as caught:
        _works()
    assert len([w for w in caught if "refusing" in str(w.message)]) == 1
    assert "\n" not in str(caught[0].message)
    assert not marker.exists()
    assert cache not in native.library_path().parents


def test_a_planted_library_in_a_private_cache_is_rebuilt_not_loaded(cache, tmp_path):
    marker = tmp_path / "ran"
    target = cache / _expected_name()
    _plant(target, marker, symbol="pladis_weights_not")  # no pladis_weights symbol either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _works()
    assert not marker.exists()
    assert native.library_path() == target  # rebuilt in place, with its digest
    assert (cache / (target.name + ".sha256")).read_text().strip() == native._digest(target)


@pytest.mark.parametrize("content", [b"", b"\x7fELF truncated"])
def test_an_empty_or_truncated_library_is_rebuilt_with_the_tuned_flags(cache, content):
    target = cache / _expected_name()
    target.write_bytes(content)
    _works()
    assert native.library_path() == target  # not the portable build's name
    assert target.stat().st_size > 1000


def test_a_library_whose_digest_changed_is_rebuilt(cache):
    _works()
    target = native.library_path()
    stamp = target.stat().st_mtime_ns
    native._library.cache_clear()
    (cache / (target.name + ".sha256")).write_text("0" * 64)
    _works()
    assert native.library_path() == target and target.stat().st_mtime_ns != stamp


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or shutil.which("chown") is None, reason="needs root")
def test_a_cache_owned_by_someone_else_is_refused(cache):
    os.chown(cache, 12345, 12345)
    with pytest.warns(RuntimeWarning, match="owned by uid 12345"):
        _works()
