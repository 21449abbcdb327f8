"""Errors the CLI reports as one line, ``pladis: error: <message>``, with an exit status."""

from __future__ import annotations

#: Exit statuses: success, runtime error, usage or input error (argparse's own status for usage errors).
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """A runtime failure (loading, device, generation): exit status 1."""

    code = EXIT_RUNTIME

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CLIError):
    """Bad arguments or inputs (unknown backbone or preset, unreadable prompt file, …): exit status 2."""

    code = EXIT_USAGE


def one_line(message: object, limit: int = 600) -> str:
    """``message`` with its whitespace (newlines included) collapsed, cut at ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
