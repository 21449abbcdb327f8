r"""Writing a PLADIS adapter plugin — the plugin-author guide.

An *adapter* tells PLADIS how one backbone family is built and sampled: which pipelines and denoisers
it serves, where their cross-attention lives (as named layer groups), which attention semantics its
cross-attention uses, its sampling presets, a tiny random-weight pipeline for tests, and how the real
weights are loaded. PLADIS itself never imports an adapter; it finds them through the entry-point
group ``pladis.adapters``, lazily (on the first ``pladis.apply``/``pladis.list_adapters`` call), once.
The built-in adapters (sd15, sdxl, sdxl-turbo, ...) are plugins exactly like yours.

1. Write a module with a hook implementation::

       from pladis_registry import AdapterSpec, Preset, hookimpl

       MY_SPEC = AdapterSpec(
           name="mybackbone",
           description="My UNet text-to-image model",
           pipeline_classes=("MyPipeline",),
           denoiser_classes=("UNet2DConditionModel",),
           layer_groups={"down": r"^down_blocks\.", "mid": r"^mid_block\.", "up": r"^up_blocks\."},
           presets={"default": Preset("default", scheduler="EulerDiscreteScheduler",
                                      num_inference_steps=25, guidance_scale=5.0)},
           default_preset="default",
       )

       @hookimpl
       def pladis_register_adapters(register):
           register(MY_SPEC)

2. Declare it in your distribution's ``pyproject.toml``::

       [project.entry-points."pladis.adapters"]
       mybackbone = "my_package.adapter"

3. ``pip install`` your distribution: ``pladis plugins`` / ``pladis.list_adapters()`` now list it
   with your distribution's name and version, and ``pladis.apply(pipe, backbone="mybackbone")``
   uses it. Name distributions ``pladis-adapter-<backbone>``.

4. Test it with one line, ``pladis_registry.testing.check_adapter(MY_SPEC)`` (it needs ``tiny=``, a
   factory of a small random-weight pipeline: :mod:`pladis_registry.kit.builders`). Every field of
   :class:`~pladis_registry.AdapterSpec`, a UNet and a DiT example: docs/writing-adapters.md.

A plugin that fails to import or raises inside its hook is logged and skipped; it never breaks the
host. ``PLADIS_DISABLE_PLUGIN_AUTOLOAD=1`` disables entry-point loading (plugins can still be passed
explicitly to :func:`pladis_registry.make_plugin_manager`), and ``PLADIS_PLUGINS=name,name`` loads
only the named entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .spec import AdapterSpec

PROJECT_NAME = "pladis"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def pladis_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Register this plugin's backbone adapters by calling ``register(spec)`` once per adapter.

    :param register: collects one :class:`pladis_registry.AdapterSpec`; a name registered twice is
        an error reported against the second plugin.
    """
