"""The data an adapter declares: its backbone, where cross-attention lives, presets, factories."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AttentionStyle = Literal["sd", "sana", "auto"]

#: The layer groups of a diffusers UNet (the paper's Table 8: down / mid / up blocks).
UNET_LAYER_GROUPS: Mapping[str, str] = {"down": r"^down_blocks\.", "mid": r"^mid_block\.", "up": r"^up_blocks\."}


@dataclass(frozen=True)
class Preset:
    """Sampling settings a backbone's users need (scheduler, steps or explicit timesteps, CFG scale).

    ``scheduler`` is a diffusers scheduler class name (None keeps the pipeline's own class);
    ``scheduler_config`` overrides entries of the pipeline's own scheduler config (e.g.
    ``{"timestep_spacing": "trailing"}``); ``call_overrides`` are extra pipeline-call kwargs (``eta``).
    """

    name: str
    scheduler: str | None = None
    scheduler_config: Mapping[str, Any] = field(default_factory=dict)
    num_inference_steps: int | None = None
    timesteps: tuple[int, ...] | None = None
    guidance_scale: float | None = 7.5  # None: the pipeline's own default
    height: int | None = None
    width: int | None = None
    call_overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def make_scheduler(self, base_config: Mapping[str, Any], default_class: type | None = None) -> Any:
        """Build the preset's scheduler from a pipeline's scheduler config plus the overrides."""
        import diffusers

        cls = getattr(diffusers, self.scheduler, None) if self.scheduler else default_class
        if cls is None:
            raise ValueError(f"preset {self.name!r}: diffusers has no scheduler class {self.scheduler!r}")
        return cls.from_config(dict(base_config), **dict(self.scheduler_config))

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the pipeline call (steps or timesteps, guidance scale, size)."""
        kwargs: dict[str, Any] = {} if self.guidance_scale is None else {"guidance_scale": self.guidance_scale}
        if self.timesteps is not None:
            kwargs["timesteps"] = list(self.timesteps)
        elif self.num_inference_steps is not None:
            kwargs["num_inference_steps"] = self.num_inference_steps
        if self.height is not None:
            kwargs["height"] = self.height
        if self.width is not None:
            kwargs["width"] = self.width
        kwargs.update(self.call_overrides)
        return kwargs

    def configure(self, pipe: Any) -> dict[str, Any]:
        """Install the preset's scheduler on ``pipe``; return the call kwargs."""
        pipe.scheduler = self.make_scheduler(pipe.scheduler.config, type(pipe.scheduler))
        return self.call_kwargs()


@dataclass(frozen=True)
class AdapterSpec:
    """What one backbone adapter declares, as data where possible (guide: docs/writing-adapters.md).

    Identity: ``name`` is the backbone name users pass as ``backbone=`` / ``--backbone`` (lower-case
    ``[a-z0-9_.-]``); ``description`` is the line ``pladis plugins`` shows.

    Matching: ``pipeline_classes``/``denoiser_classes`` are class names checked against the MRO of the
    pipeline / denoiser (a denoiser also has to carry the ``denoiser_config`` values, e.g. SDXL's
    ``addition_embed_type="text_time"``); ``model_id_patterns`` are regexes searched in the model id or folder the
    pipeline was loaded from (how the guidance-distilled SDXL variants, which share SDXL's classes,
    are told apart). Among matching adapters the one with an id match wins, then higher ``priority``
    (built-ins use 10). ``generic=True`` marks a fallback that matches nothing itself and is used when no
    other adapter matches (the ``generic`` adapter).

    Locations: every ``Attention`` module with ``is_cross_attention`` is a candidate (self-attention
    is never selected). ``layer_groups`` maps a group name to a regex over the module's name within
    the denoiser (UNets: down / mid / up, the paper's Table 8; the first matching group wins); with no
    groups the first path component is the group. ``block_index_pattern`` (a regex with one group) lets
    users select DiT blocks by index ranges (``layers=range(0, 10)`` or ``"0-9"``). ``attention_style``
    picks the processor semantics: "sd" (``AttnProcessor2_0``), "sana" (``SanaAttnProcessor2_0``) or
    "auto" (decided per module).

    Sampling: ``presets`` maps a name to a :class:`Preset`; ``default_preset`` names the one used when
    none is asked for (without it, ``preset()`` with no name is an error and the CLI keeps the
    pipeline's own defaults).

    Factories: ``tiny(seed=0)`` builds a small random-weight pipeline of the backbone's architecture
    from the real diffusers/transformers classes (``tiny_call_kwargs`` keep a call of it cheap; they are
    laid over a preset's call kwargs); ``load(model=None, *, variant=None, torch_dtype=None, pag=False,
    **kw)`` loads the real weights (hub id or local folder, safetensors first). ``extra`` holds anything
    else an adapter wants to publish (``default_model``: the hub id ``load`` uses without a model).
    """

    name: str
    description: str = ""
    pipeline_classes: tuple[str, ...] = ()
    denoiser_classes: tuple[str, ...] = ()
    denoiser_config: Mapping[str, Any] = field(default_factory=dict)
    model_id_patterns: tuple[str, ...] = ()
    layer_groups: Mapping[str, str] = field(default_factory=dict)
    block_index_pattern: str | None = None
    attention_style: AttentionStyle = "auto"
    presets: Mapping[str, Preset] = field(default_factory=dict)
    default_preset: str | None = None
    priority: int = 0
    generic: bool = False
    tiny: Callable[..., Any] | None = None
    tiny_call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    load: Callable[..., Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", self.name):
            raise ValueError(f"AdapterSpec.name must be lower-case [a-z0-9_.-]; got {self.name!r}")
        if self.default_preset is not None and self.default_preset not in self.presets:
            raise ValueError(
                f"adapter {self.name!r}: default_preset {self.default_preset!r} is not one of {sorted(self.presets)}"
            )
        for pattern in (*self.model_id_patterns, *self.layer_groups.values(), self.block_index_pattern or ""):
            re.compile(pattern)

    def preset(self, name: str | None = None) -> Preset:
        """The named preset (default: ``default_preset``); ``ValueError`` lists the valid names."""
        key = name or self.default_preset
        if key is None or key not in self.presets:
            raise ValueError(
                f"unknown preset {name!r} for backbone {self.name!r}; choose one of {sorted(self.presets)}"
            )
        return self.presets[key]

    def group_of(self, module_name: str) -> str:
        """The layer group a cross-attention module belongs to."""
        for group, pattern in self.layer_groups.items():
            if re.search(pattern, module_name):
                return group
        return module_name.split(".", 1)[0]

    def block_index(self, module_name: str) -> int | None:
        """The block index of a module, if the adapter declares ``block_index_pattern``."""
        if self.block_index_pattern is None:
            return None
        found = re.search(self.block_index_pattern, module_name)
        return int(found.group(1)) if found else None


@dataclass(frozen=True)
class AdapterInfo:
    """A discovered adapter with the distribution that provides it."""

    spec: AdapterSpec
    plugin: str
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return self.spec.name
