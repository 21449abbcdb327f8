"""The ``pladis`` command line: generate, compare, sweep, attention maps, plugins and ONNX export.

    pladis compare "a red circle left of a blue square" --out outputs/demo
    pladis generate "a photo of a cat" --model stable-diffusion-v1-5/stable-diffusion-v1-5
    pladis sweep -f prompts.txt --model path/to/pipeline --scales 0,1,2,3 --alphas 1.5,2
    pladis maps "a red circle left of a blue square" --tokens circle,square
    pladis plugins
    pladis export-onnx --model path/to/pipeline --out onnx/ && pladis generate "a cat" --onnx onnx/ --scale 2

Every command loads the model once (``--model`` hub id or folder; omitted: the embedded default of
:mod:`pladis.cli._defaults`), writes PNGs with JSON sidecars to ``--out`` and shows progress bars.
``export-onnx`` and ``generate --onnx`` come with the optional ``pladis-onnx`` (``pip install "pladis[onnx]"``),
which registers them through the plugin hooks, as any plugin adds commands (:mod:`pladis.cli._commands`).
Exit status: 0 success, 2 usage or input error, 1 runtime error; errors print one line,
``pladis: error: <message>`` (``PLADIS_DEBUG=1`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import _commands
from ._errors import EXIT_RUNTIME, EXIT_USAGE, CLIError, one_line

__all__ = ["build_parser", "main"]

PROG = "pladis"
EPILOG = """exit status: 0 success, 2 usage or input error, 1 runtime error (PLADIS_DEBUG=1 shows tracebacks).
Paper: Kim & Sim, PLADIS (arXiv:2503.07677), Eq. 15: At = At_dense + λ·(At_α-entmax − At_dense)."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``pladis: error: <message> (…--help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message}{_commands.install_hint(message)} (see `{self.prog} --help`)", EXIT_USAGE)
        raise SystemExit(EXIT_USAGE)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``pladis`` argument parser, one sub-command per registered command module.

    With ``argv`` naming a registered command, only that command's module is imported (the others get
    bare entries, named in usage errors); otherwise every module is, for ``pladis --help``."""
    from importlib import metadata

    try:
        version = metadata.version("pladis")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "unknown"
    parser = OneLineErrorParser(
        prog=PROG, description="PLADIS: sparse cross-attention for text-to-image diffusion at inference time.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    commands = _commands.commands()
    chosen = next((a for a in argv or () if not a.startswith("-")), None)
    for name, info in commands.items():
        if chosen in commands and name != chosen:
            subparsers.add_parser(name)
        else:
            _commands.add_command(subparsers, info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors (argparse printed them)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    args.argv = argv
    try:
        if getattr(args, "quiet", False):  # -q: no third-party warnings or loading bars either
            from ._session import quiet_libraries

            with quiet_libraries(True):
                return int(args.run(args) or 0)
        return int(args.run(args) or 0)
    except CLIError as error:
        return _fail(error.message, error.code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `pladis plugins | head`: stop quietly (Python docs' recipe)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_RUNTIME
    except Exception as error:
        if os.environ.get("PLADIS_DEBUG", "").strip() not in ("", "0"):
            raise
        return _fail(f"{type(error).__name__}: {error}", EXIT_RUNTIME)


def _fail(message: str, code: int) -> int:
    try:
        sys.stdout.flush()  # the message comes after anything already printed
    except (OSError, ValueError):
        pass
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return code

