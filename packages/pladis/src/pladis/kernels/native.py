"""PLADIS weights (Eq. 15) on the CPU by one fused C kernel (``native_kernel.c``), compiled on first use.

The scores are computed keys-major, Sᵀ = K·Qᵀ (a matmul no dearer than Q·Kᵀ), so each SIMD lane
of the kernel holds one query row: softmax, the α-entmax threshold passes (the solver of
:mod:`pladis.alpha_entmax`, iterated per block until every row has Σp = 1 to fp32 resolution) and the
λ-mix run on a block of 16 rows in L1, with plain vector adds for the row sums. The weights overwrite
the scores and go to one matmul Mᵀ·V (:func:`pladis.kernels.eager.attention` with ``keys_major``).
The blocks are shared out over torch's OpenMP threads when torch's libgomp is the one loaded (the
usual Linux wheels); a torch with another OpenMP runtime gives the kernel a pool of its own (same
results; the two pools may then compete for the cores).

The kernel is built with the system C compiler (``$CC``, else gcc / cc / clang; ``-O3 -march=native``
with OpenMP, else portable flags, else without OpenMP) into ``$PLADIS_CACHE_DIR`` (default
``~/.cache/pladis``), keyed by the source, the flags, the compiler and the CPU, so the first call on a
machine compiles (docs/kernels.md) and later processes load the library.

A shared library is code that runs when loaded, so the cache is trusted only when it is the user's
own: a cache folder not owned by the user, or one that others can write, is refused (one warning line
says why) and a private temporary folder used instead, as when the cache cannot be written. Each build
leaves the SHA-256 of the library beside it (``<name>.so.sha256``); a library is loaded only when it is
owned by the user, writable by no one else and matches its digest. Anything else found under the
expected name — planted, empty, truncated, without the kernel's symbol — is rebuilt (atomically: a
temporary file renamed into place) instead of loaded. No compiler, or a failed build, is remembered and
the caller falls back (with a warning). ``PLADIS_NATIVE=0`` (read once per process) turns the kernel
off: nothing is compiled or loaded, and ``auto`` picks among the other back-ends.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import torch

from .._checks import warn

__all__ = ["native_weights", "usable", "failure", "library_path"]

SOURCE = Path(__file__).with_name("native_kernel.c")
_PORTABLE_FLAGS = ["-O3", "-fno-math-errno", "-fPIC", "-shared"]
_QUARTERS, _THIRDS, _GENERIC = 0, 1, 2

_failure: list[str] = []  # why the kernel cannot be had here (the first error; not retried)


def usable(device: torch.device) -> bool:
    """Whether the kernel runs here: CPU tensors and a library that built (or was built before)."""
    return device.type == "cpu" and _library() is not None


def failure() -> str | None:
    """Why the kernel is unavailable (None while it is available or not yet tried)."""
    return _failure[0] if _failure else None


def library_path() -> Path | None:
    """The shared library in use (None when unavailable)."""
    lib = _library()
    return None if lib is None else Path(lib._name)


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _flag_sets() -> list[list[str]]:
    """Flags to try in turn: tuned for this CPU with OpenMP, then portable with, then without OpenMP."""
    tuned = ["-march=native"] + (["-mprefer-vector-width=512"] if platform.machine() in ("x86_64", "AMD64") else [])
    return [tuned + _PORTABLE_FLAGS + ["-fopenmp"], _PORTABLE_FLAGS + ["-fopenmp"], _PORTABLE_FLAGS]


def _cpu_signature() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))


def _cache_dir() -> Path:
    root = os.environ.get("PLADIS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pladis"
    )
    return Path(root)


def _distrust(path: Path) -> str | None:
    """Why ``path`` (a cache folder or a file in it) is not the user's own (None when it is)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by you"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"others can write to it (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _usable_cache() -> Path:
    """The cache folder if it is (or can be made) the user's private one, else a private temporary one;
    a refused cache is named in one warning line."""
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        reason = _distrust(cache)
    except OSError:  # cannot be created or read: build privately, as for a read-only home
        return Path(tempfile.mkdtemp(prefix="pladis-native-"))
    if reason is not None:
        warn(f"pladis: refusing the native kernel cache {str(cache)!r} ({reason}); building in a private temporary folder")
        return Path(tempfile.mkdtemp(prefix="pladis-native-"))
    return cache


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path) -> bool:
    """Whether ``target`` is a library this user built: owned, writable by no one else, matching the
    digest its build left beside it."""
    record = target.with_name(target.name + ".sha256")
    try:
        if _distrust(target) or _distrust(record):
            return False
        return record.read_text().strip() == _digest(target)
    except OSError:
        return False


def _build(compiler: str, flags: list[str], target: Path) -> None:
    """Compile SOURCE into ``target`` and its digest beside it, each atomically (a temporary file renamed
    into place)."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp], check=True, capture_output=True, text=True, timeout=120)
        os.chmod(tmp, 0o700)
        fd, record = tempfile.mkstemp(suffix=".sha256", dir=target.parent)
        with os.fdopen(fd, "w") as file:
            file.write(_digest(Path(tmp)))
        os.replace(record, target.with_name(target.name + ".sha256"))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _built(compiler: str, flags: list[str], name: str, cache: Path) -> Path:
    """The library ``name`` in ``cache``, (re)built there unless a verified one is there already; in a
    private temporary folder when the cache cannot be written."""
    target = cache / name
    if _verified(target):
        return target
    try:
        _build(compiler, flags, target)
    except OSError:
        target = Path(tempfile.mkdtemp(prefix="pladis-native-")) / name
        _build(compiler, flags, target)
    return target


@functools.cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("PLADIS_NATIVE", "1") == "0":
        _failure.append("turned off by PLADIS_NATIVE=0")
        return None
    compiler = _compiler()
    if compiler is None:
        _failure.append("no C compiler found (set $CC, or install gcc or clang)")
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        version = str(error)
    errors, cache = [], _usable_cache()
    for flags in _flag_sets():
        try:
            return _bind(ctypes.CDLL(str(_built(compiler, flags, library_name(compiler, version, flags), cache))))
        except subprocess.CalledProcessError as error:
            errors.append(f"{' '.join(flags)}: {error.stderr.strip()[:300]}")
        except (OSError, AttributeError, subprocess.SubprocessError) as error:
            errors.append(f"{type(error).__name__}: {error}")
    _failure.append("the native kernel did not build or load: " + " | ".join(errors))
    warn(f"pladis: {_failure[0][:400]}; using another back-end", stacklevel=3)
    return None


def library_name(compiler: str, version: str, flags: list[str]) -> str:
    """The cache file name of the library built by ``compiler`` (of ``version``) with ``flags``."""
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *flags, compiler, version, _cpu_signature()]).encode())
    return f"pladis_native_{key.hexdigest()[:20]}.so"


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    f, i, i64, p = ctypes.c_float, ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    lib.pladis_weights.argtypes = [p, p, p, p, i64, i64, i64, f, f, f, f, f, i, i, i, f, i]
    lib.pladis_weights.restype = i
    return lib


@functools.cache
def _power_spec(exponent: float) -> tuple[int, int, int, float]:
    """(mode, whole, part, frac) of y**exponent for the kernel: multiples of 1/4 and of 1/3 (up to 4)
    by products, square and cube roots; others by exp2(e·log2 y)."""
    for mode, denominator in ((_QUARTERS, 4), (_THIRDS, 3)):
        n = round(exponent * denominator)
        if 0 < n <= 4 * denominator and abs(exponent * denominator - n) < 1e-9:
            return mode, n // denominator, n % denominator, 0.0
    return _GENERIC, 0, 0, exponent


def native_weights(
    scores: torch.Tensor, bias: torch.Tensor | None, scale: float, alpha: float, temperature: float,
    lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, None]:
    """Eq. 15's weights for keys-major float32 ``scores`` (…, Nk, m), overwritten and returned in the same
    layout; ``bias`` is None or broadcasts to the queries-major (…, m, Nk). Every row is solved (no
    ``done`` flags). α must be in (1, 2]. ``lse``, a contiguous float32 (…, m) tensor, receives each
    row's log-sum-exp of ``scores + bias`` (−inf for a fully masked row)."""
    lib = _library()
    if lib is None:
        raise RuntimeError(f"pladis: the native kernel is unavailable ({failure()})")
    n_key, n_query = scores.shape[-2:]
    if scores.dtype != torch.float32 or not scores.is_contiguous() or scores.device.type != "cpu":
        raise ValueError(f"scores must be a contiguous float32 CPU tensor; got {scores.dtype} on {scores.device}")
    if not 1.0 < alpha <= 2.0:
        raise ValueError(f"alpha must be in (1, 2] for the native kernel; got {alpha}")
    bias_km = None
    if bias is not None:
        if bias.device != scores.device:
            raise ValueError(f"the mask is on {bias.device}, the scores on {scores.device}")
        bias_km = bias.expand(*scores.shape[:-2], n_query, n_key).transpose(-2, -1).float().contiguous()
    if lse is not None and (lse.dtype != torch.float32 or not lse.is_contiguous()
                            or lse.numel() != scores.numel() // max(n_key, 1)):
        raise ValueError(f"lse must be a contiguous float32 tensor of {scores.numel() // max(n_key, 1)} values")
    k = 1.0 / (alpha - 1.0)
    status = lib.pladis_weights(
        scores.data_ptr(), None if bias_km is None else bias_km.data_ptr(), scores.data_ptr(),
        None if lse is None else lse.data_ptr(),
        scores.numel() // max(n_key * n_query, 1), n_key, n_query, alpha, alpha - 1.0, k, scale,
        1.0 / temperature, *_power_spec(k - 1.0), torch.get_num_threads(),
    )
    if status:
        raise MemoryError("pladis: the native kernel could not allocate its scratch memory or threads")
    return scores, None
