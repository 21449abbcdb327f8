"""pladis-registry: the plugin registry of PLADIS backbone adapters (guide: :mod:`pladis_registry.hookspecs`)."""

from .hookspecs import hookimpl, hookspec
from .manager import (
    ALLOW_LIST_ENV,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    Registry,
    collect_adapters,
    load_entry_point_plugins,
    make_plugin_manager,
)
from .spec import UNET_LAYER_GROUPS, AdapterInfo, AdapterSpec, Preset

__all__ = [
    "ALLOW_LIST_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "AdapterInfo",
    "AdapterSpec",
    "Preset",
    "Registry",
    "UNET_LAYER_GROUPS",
    "collect_adapters",
    "hookimpl",
    "hookspec",
    "load_entry_point_plugins",
    "make_plugin_manager",
]
