"""``python -m pladis_eval evaluate|benchmark …``: the two commands without the ``pladis`` front end
(the same parsers and error handling; handy under ``accelerate launch -m pladis_eval``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import benchmark, evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pladis", description="PLADIS evaluation: evaluate and benchmark.")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    evaluate.add_parser(subparsers)
    benchmark.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pladis.cli import _fail
    from pladis.cli._errors import EXIT_USAGE, CLIError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    args.argv = argv
    try:
        return int(args.run(args) or 0)
    except CLIError as error:
        return _fail(error.message, error.code)


if __name__ == "__main__":
    sys.exit(main())
