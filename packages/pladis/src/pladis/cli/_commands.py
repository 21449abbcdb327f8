"""The CLI's sub-commands and ``generate`` options, collected through the plugin hooks
``pladis_register_commands`` and ``pladis_register_generate_options`` (:mod:`pladis_registry.hookspecs`).

The built-in commands register through the same hook as any plugin's (this module is their plugin, and
it is registered first, so that a plugin cannot replace one); ``pladis-onnx`` adds ``export-onnx`` and
``generate --onnx``. Command modules are imported only when a parser needs them.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from types import ModuleType
from typing import Any

from pladis_registry import hookimpl

#: name → module of the built-in commands, in the order ``pladis --help`` lists them.
BUILTIN_COMMANDS = {
    "generate": "pladis.cli.generate",
    "compare": "pladis.cli.compare",
    "sweep": "pladis.cli.sweep",
    "maps": "pladis.cli.maps",
    "plugins": "pladis.cli.plugins",
}

#: Commands and options of the project's optional distributions → what installs them (for usage errors
#: when that distribution is absent).
OPTIONAL = {"export-onnx": 'pip install "pladis[onnx]"', "--onnx": 'pip install "pladis[onnx]"',
            "--provider": 'pip install "pladis[onnx]"'}

logger = logging.getLogger("pladis.cli")


def install_hint(message: str) -> str:
    """``; install it with …`` when a usage error ``message`` names a command or option of an optional
    distribution that is not installed, else ''."""
    for name, command in OPTIONAL.items():
        named = f"'{name}'" in message  # "invalid choice: 'export-onnx'"
        if named or ("unrecognized arguments" in message and f" {name} " in f" {message} "):
            return f"; {name} comes with an optional distribution: {command}"
    return ""


@hookimpl
def pladis_register_commands(register: Any) -> None:
    for name, module in BUILTIN_COMMANDS.items():
        register(name, module)


@functools.cache
def plugin_manager() -> Any:
    """The CLI's plugin manager: this module first, then the entry-point plugins (once per process)."""
    from pladis_registry import make_plugin_manager

    return make_plugin_manager(plugins=[sys.modules[__name__]])


def commands() -> dict[str, Any]:
    """name → :class:`pladis_registry.CommandInfo` of every registered sub-command."""
    from pladis_registry import collect_commands

    return collect_commands(plugin_manager())


def import_module(path: str, what: str) -> ModuleType | None:
    """The module at ``path``, or None (logged on one line) when it cannot be imported."""
    try:
        return importlib.import_module(path)
    except Exception as error:
        logger.error("pladis: skipping %s (%s): %s: %s", what, path, type(error).__name__,
                     str(error).splitlines()[0] if str(error) else "")
        return None


def add_command(subparsers: Any, info: Any) -> bool:
    """Add the sub-command ``info`` (its module's ``add_parser``); False, logged, when it is broken."""
    module = import_module(info.module, f"command {info.name!r} of plugin {info.plugin!r}")
    if module is None:
        return False
    before = set(subparsers.choices)
    try:
        module.add_parser(subparsers)
        added = set(subparsers.choices) - before
        if added != {info.name}:
            raise ValueError(f"its add_parser did not add a sub-command named {info.name!r} (only): {sorted(added)}")
    except Exception as error:
        logger.error("pladis: skipping command %r of plugin %r: %s: %s", info.name, info.plugin,
                     type(error).__name__, error)
        added = set(subparsers.choices) - before  # nothing half-added
        for name in added:
            del subparsers.choices[name]
        subparsers._choices_actions[:] = [a for a in subparsers._choices_actions if a.dest not in added]
        return False
    return True


def generate_option_modules() -> list[ModuleType]:
    """The modules registered through ``pladis_register_generate_options`` that import."""
    from pladis_registry import collect_generate_options

    found = []
    for path in collect_generate_options(plugin_manager()):
        module = import_module(path, "generate options")
        if module is not None:
            found.append(module)
    return found


def add_generate_options(parser: argparse.ArgumentParser) -> None:
    """Let every registered module add its options to the ``generate`` parser."""
    modules = []
    for module in generate_option_modules():
        try:
            module.add_options(parser)
        except Exception as error:
            logger.error("pladis: skipping generate options of %s: %s: %s", module.__name__, type(error).__name__, error)
            continue
        modules.append(module.__name__)
    parser.set_defaults(generate_option_modules=modules)


def run_generate_options(args: argparse.Namespace, prompts: list[str]) -> int | None:
    """Offer the command to each module that added options (in order): the first that returns an exit
    status took it over; None when every one left it to the PyTorch path."""
    for path in getattr(args, "generate_option_modules", []):
        status = importlib.import_module(path).run(args, prompts)
        if status is not None:
            return int(status)
    return None
