"""The ``pladis.plugins`` entry point: adds ``pladis evaluate`` and ``pladis benchmark``."""

from __future__ import annotations

from collections.abc import Callable

import pladis_registry


@pladis_registry.hookimpl
def pladis_register_commands(register: Callable[[str, str], None]) -> None:
    """Register the two commands by their light modules (heavy imports happen when they run)."""
    register("evaluate", "pladis_eval.cli.evaluate")
    register("benchmark", "pladis_eval.cli.benchmark")
