"""The ``pladis.plugins`` entry point: registers the ``ui`` command with the ``pladis`` CLI."""

from __future__ import annotations

from collections.abc import Callable

import pladis_registry


@pladis_registry.hookimpl
def pladis_register_commands(register: Callable[[str, str], None]) -> None:
    register("ui", "pladis_ui.command")
