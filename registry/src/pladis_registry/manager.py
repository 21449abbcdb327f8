"""Plugin-manager factory and lazy, once-only adapter discovery through entry points."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .spec import AdapterInfo, AdapterSpec

ENTRY_POINT_GROUP = "pladis.adapters"
#: Plugins that only add CLI commands or ``generate`` options (see :func:`pladis_register_commands`).
PLUGIN_ENTRY_POINT_GROUP = "pladis.plugins"
DISABLE_AUTOLOAD_ENV = "PLADIS_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_LIST_ENV = "PLADIS_PLUGINS"
#: The project's own adapter distributions (one installed distribution per name, so a plugin cannot pose as
#: one; third-party adapters named ``pladis-adapter-<backbone>`` as the README advises are not in it).
BUILTIN_DISTRIBUTIONS = frozenset(
    f"pladis-adapter-{name}"
    for name in ("dmd2", "generic", "hyper-sdxl", "sana", "sd15", "sdxl", "sdxl-lightning", "sdxl-turbo")
)
#: The project's own distributions that register CLI commands (loaded before third-party plugins).
BUILTIN_PLUGIN_DISTRIBUTIONS = frozenset({"pladis", "pladis-onnx"})

logger = logging.getLogger("pladis.registry")
HOOK_NAMES = tuple(sorted(name for name in vars(hookspecs) if name.startswith("pladis_register_")))


def make_plugin_manager(*, autoload: bool | None = None, plugins: Iterable[Any] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager with PLADIS's hookspecs, the given ``plugins`` and (by default) the
    entry-point plugins of the ``pladis.adapters`` and ``pladis.plugins`` groups.

    ``autoload=None`` follows the environment: ``PLADIS_DISABLE_PLUGIN_AUTOLOAD=1`` turns it off.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        manager.register(plugin)
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {"1", "true", "yes"}
    if autoload:
        load_entry_point_plugins(manager)
        load_entry_point_plugins(manager, PLUGIN_ENTRY_POINT_GROUP)
    manager.check_pending()
    return manager


def load_entry_point_plugins(manager: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Register every entry point of ``group`` (or those named in ``PLADIS_PLUGINS``), the project's own
    first (:func:`_builtin`), so that a third-party plugin never displaces one. A plugin that fails to
    import or implements a hook that does not exist (a misspelt name) is logged and skipped, and so is a
    second entry point of a name already registered. Returns the names registered; the distribution of
    each is kept in ``manager.pladis_distributions``."""
    allow = {n.strip() for n in os.environ.get(ALLOW_LIST_ENV, "").split(",") if n.strip()}
    distributions: dict[str, tuple[str, str]] = getattr(manager, "pladis_distributions", {})
    manager.pladis_distributions = distributions
    kind = "adapter plugin" if group == ENTRY_POINT_GROUP else "plugin"
    loaded = []
    for entry in sorted(metadata.entry_points(group=group), key=lambda e: (not _builtin(e), e.name, _dist(e))):
        if allow and entry.name not in allow:
            continue
        if manager.has_plugin(entry.name):
            logger.warning("pladis: skipping %s %r of %s: that name is taken by %s", kind, entry.name,
                           _dist(entry) or entry.value, distributions.get(entry.name, ("another plugin",))[0])
            continue
        try:
            plugin = entry.load()
            manager.register(plugin, name=entry.name)
        except Exception:
            _log_skip(f"pladis: skipping broken {kind} {entry.name!r} ({entry.value})")
            continue
        unknown = _unknown_hooks(manager, plugin)
        if unknown:
            manager.unregister(name=entry.name)
            logger.error("pladis: skipping %s %r (%s): it implements no hook of PLADIS's, %s "
                         "(the hooks are %s)", kind, entry.name, entry.value, unknown, ", ".join(HOOK_NAMES))
            continue
        distributions[entry.name] = (entry.dist.name, entry.dist.version) if entry.dist else ("", "")
        loaded.append(entry.name)
    return loaded


def _log_skip(message: str) -> None:
    """One line at ERROR with the exception being handled (a command prints it each run); the traceback
    at DEBUG."""
    error = sys.exc_info()[1]
    logger.error("%s: %s: %s", message, type(error).__name__, str(error).splitlines()[0] if str(error) else "")
    logger.debug("traceback of the skipped plugin", exc_info=True)


def _unknown_hooks(manager: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Hooks ``plugin`` implements that have no spec (what ``check_pending`` would refuse)."""
    return [caller.name for caller in manager.get_hookcallers(plugin) or []
            if caller.spec is None and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())]


def _dist(entry: metadata.EntryPoint) -> str:
    return entry.dist.name if entry.dist else ""


def _builtin(entry: metadata.EntryPoint) -> bool:
    return _dist(entry) in BUILTIN_DISTRIBUTIONS or _dist(entry) in BUILTIN_PLUGIN_DISTRIBUTIONS


def collect_adapters(manager: pluggy.PluginManager) -> dict[str, AdapterInfo]:
    """Ask every plugin for its adapters. A plugin whose hook raises, or that registers a name
    already taken, is logged and skipped (its adapters are dropped as a whole)."""
    dists = getattr(manager, "pladis_distributions", {})
    found: dict[str, AdapterInfo] = {}
    for impl in manager.hook.pladis_register_adapters.get_hookimpls():  # registration order
        plugin_name = impl.plugin_name
        specs: list[AdapterSpec] = []

        def register(spec: AdapterSpec, _specs: list[AdapterSpec] = specs) -> None:
            if not isinstance(spec, AdapterSpec):
                raise TypeError(f"register() takes an AdapterSpec; got {type(spec).__name__}")
            _specs.append(spec)

        try:
            impl.function(register=register)
            clash = [s.name for s in specs if s.name in found] + _duplicates(s.name for s in specs)
            if clash:
                raise ValueError(f"adapter name(s) already registered: {sorted(set(clash))}")
        except Exception:
            _log_skip(f"pladis: skipping adapter plugin {plugin_name!r} whose registration failed")
            continue
        dist, version = dists.get(plugin_name, ("", ""))
        for spec in specs:
            found[spec.name] = AdapterInfo(spec=spec, plugin=plugin_name, distribution=dist, version=version)
    return found


class Registry:
    """The adapters of one plugin manager, discovered lazily on first use and then kept."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        self._manager = manager
        self._adapters: dict[str, AdapterInfo] | None = None

    @property
    def manager(self) -> pluggy.PluginManager:
        if self._manager is None:
            self._manager = make_plugin_manager()
        return self._manager

    def adapters(self) -> dict[str, AdapterInfo]:
        """Name → adapter, collected once."""
        if self._adapters is None:
            self._adapters = collect_adapters(self.manager)
        return self._adapters

    def get(self, name: str) -> AdapterInfo:
        """The adapter called ``name``; ``ValueError`` lists the valid names."""
        adapters = self.adapters()
        if name not in adapters:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(adapters) or '(no adapters installed)'}")
        return adapters[name]


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]


@dataclass(frozen=True)
class CommandInfo:
    """A CLI sub-command registered through ``pladis_register_commands``."""

    name: str
    module: str
    plugin: str
    distribution: str = ""


def collect_commands(manager: pluggy.PluginManager) -> dict[str, CommandInfo]:
    """Ask every plugin for its CLI sub-commands (name → :class:`CommandInfo`, in registration order).
    A plugin whose hook raises, registers a bad name or module path, or takes a name already registered,
    is logged and skipped as a whole (the first registration of a name wins)."""
    found: dict[str, CommandInfo] = {}
    for plugin_name, dist, items in _collect(manager, "pladis_register_commands", _command_item):
        clash = [name for name, _ in items if name in found] + _duplicates(name for name, _ in items)
        if clash:
            logger.error("pladis: skipping command plugin %r: command name(s) already registered: %s",
                         plugin_name, sorted(set(clash)))
            continue
        for name, module in items:
            found[name] = CommandInfo(name=name, module=module, plugin=plugin_name, distribution=dist)
    return found


def collect_generate_options(manager: pluggy.PluginManager) -> list[str]:
    """The dotted module paths registered through ``pladis_register_generate_options``, in order."""
    found: list[str] = []
    for _, _, modules in _collect(manager, "pladis_register_generate_options", _module_path):
        found += [module for module in modules if module not in found]
    return found


_COMMAND_NAME = re.compile(r"[a-z][a-z0-9-]*")


def _command_item(name: Any, module: Any) -> tuple[str, str]:
    if not isinstance(name, str) or not _COMMAND_NAME.fullmatch(name):
        raise ValueError(f"register(name, module): name must be a lower-case word like 'export-onnx'; got {name!r}")
    return name, _module_path(module)


def _module_path(module: Any) -> str:
    if not isinstance(module, str) or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"register(...): module must be a dotted module path like 'my_package.cli'; got {module!r}")
    return module


def _collect(manager: pluggy.PluginManager, hook: str, check: Any) -> list[tuple[str, str, list[Any]]]:
    """(plugin name, distribution, checked items) per plugin implementing ``hook``, in registration
    order; a plugin whose hook raises or calls ``register`` with bad arguments is logged and skipped."""
    dists = getattr(manager, "pladis_distributions", {})
    results = []
    for impl in getattr(manager.hook, hook).get_hookimpls():
        items: list[Any] = []
        try:
            impl.function(register=lambda *args, _items=items: _items.append(check(*args)))
        except Exception:
            _log_skip(f"pladis: skipping plugin {impl.plugin_name!r} whose {hook} failed")
            continue
        results.append((impl.plugin_name, dists.get(impl.plugin_name, ("", ""))[0], items))
    return results
