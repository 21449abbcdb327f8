"""``pladis-onnx``'s part of the ``pladis`` CLI, registered through the plugin hooks (entry point
``pladis.plugins``): the ``export-onnx`` command and ``generate``'s ``--onnx`` / ``--provider`` options.
Light: ONNX, torch and diffusers are imported when a command runs."""

from __future__ import annotations

from typing import Any

from pladis_registry import hookimpl


@hookimpl
def pladis_register_commands(register: Any) -> None:
    register("export-onnx", "pladis_onnx.cli.export_command")


@hookimpl
def pladis_register_generate_options(register: Any) -> None:
    register("pladis_onnx.cli.generate_option")
