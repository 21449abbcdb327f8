"""pladis-registry: the plugin registry of PLADIS backbone adapters (guide: :mod:`pladis_registry.hookspecs`)."""

from .hookspecs import hookimpl, hookspec
from .manager import (
    ALLOW_LIST_ENV,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PLUGIN_ENTRY_POINT_GROUP,
    CommandInfo,
    Registry,
    collect_adapters,
    collect_commands,
    collect_generate_options,
    load_entry_point_plugins,
    make_plugin_manager,
)
from .spec import UNET_LAYER_GROUPS, AdapterInfo, AdapterSpec, Preset

__all__ = [
    "ALLOW_LIST_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGIN_ENTRY_POINT_GROUP",
    "AdapterInfo",
    "AdapterSpec",
    "CommandInfo",
    "Preset",
    "Registry",
    "UNET_LAYER_GROUPS",
    "collect_adapters",
    "collect_commands",
    "collect_generate_options",
    "hookimpl",
    "hookspec",
    "load_entry_point_plugins",
    "make_plugin_manager",
]
