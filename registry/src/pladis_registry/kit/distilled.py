"""Guidance-distilled SDXL-family backbones (SDXL-Turbo, SDXL-Lightning, DMD2, Hyper-SDXL): shared loading.

A :class:`DistilledModel` is the data of one such backbone: its presets and, per preset, the weights file
of the distilled hub repo to apply to a base pipeline, by kind: ``"unet"`` (a full distilled UNet
checkpoint, loaded strictly), ``"lora"`` (a LoRA fused into the weights, adapter layers removed) or
``"full"`` (the model itself is distilled; nothing is applied). :meth:`DistilledModel.load` resolves the
weights file first (fail fast), then loads the base pipeline, applies the weights, tags the pipeline with
an id the adapter's ``model_id_patterns`` match (``pipe._pladis_model_id``, e.g.
``"ByteDance/SDXL-Lightning 4step unet"``), records the preset (``pipe._pladis_preset``) and installs
the preset's scheduler. The ``save_*`` helpers at the end write tiny distilled checkpoints and LoRAs for
offline tests.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import Preset
from .loading import fuse_lora, load_unet_checkpoint, resolve_file

FULL, UNET, LORA = "full", "unet", "lora"
KINDS = (FULL, UNET, LORA)
#: The attention projections of a diffusers UNet that the distilled LoRAs (and the test LoRAs) adapt.
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Selection:
    """What one load applies: a preset, a weights kind and that kind's file name (None for ``"full"``)."""

    preset: str
    kind: str
    filename: str | None


@dataclass(frozen=True)
class DistilledModel:
    """One guidance-distilled backbone: presets plus the distilled weights file per preset and kind.

    ``files`` maps each preset name to ``{kind: file name}``; the first kind listed is the preset's
    default. Preset names ``"<N>step"`` are also reachable as ``steps=N``. ``model_id`` is the hub repo of
    the distilled weights (of the whole model for ``"full"``); ``base_model`` is the pipeline they apply to.
    """

    name: str
    model_id: str
    base_model: str
    presets: Mapping[str, Preset]
    files: Mapping[str, Mapping[str, str | None]]
    default_preset: str

    def __post_init__(self) -> None:
        if set(self.files) != set(self.presets) or self.default_preset not in self.presets:
            raise ValueError(f"{self.name}: files {sorted(self.files)} must cover exactly the presets "
                             f"{sorted(self.presets)}, which must include {self.default_preset!r}")
        for preset, kinds in self.files.items():
            if not kinds or not set(kinds) <= set(KINDS):
                raise ValueError(f"{self.name}: preset {preset!r} needs kinds among {KINDS}; got {list(kinds)}")
            if any((name is None) != (kind == FULL) for kind, name in kinds.items()):
                raise ValueError(f"{self.name}: preset {preset!r}: only kind 'full' has no file")

    @property
    def steps_choices(self) -> list[int | str]:
        """The valid ``steps`` values: N for every ``"<N>step"`` preset, the name for the others."""
        return [int(m.group(1)) if (m := re.fullmatch(r"(\d+)step", p)) else p for p in self.presets]

    def preset_name(self, steps: int | str) -> str:
        """The preset for ``steps`` (an int N, ``"N"``, ``"<N>step"`` or another preset name)."""
        key = f"{steps}step" if isinstance(steps, int) or str(steps).isdigit() else str(steps)
        if isinstance(steps, bool) or key not in self.presets:
            raise ValueError(f"{self.name}: unsupported steps={steps!r}; choose one of {self.steps_choices}")
        return key

    def select(self, steps: int | str | None = None, kind: str | None = None,
               weights: PathLike | None = None) -> Selection:
        """Check ``steps``/``kind`` (``ValueError`` lists the valid values) and pick the weights file.

        With ``steps``/``kind`` None, a ``weights`` file whose name is one of :attr:`files` decides them;
        otherwise the default preset and the preset's first kind (``"lora"`` if the file name says so).
        """
        known = self._known(weights)
        preset = self.preset_name(steps) if steps is not None else known[0] if known else self.default_preset
        kinds = self.files[preset]
        if known and known[0] != preset:
            warnings.warn(f"{self.name}: weights file {Path(str(weights)).name!r} is the {known[0]!r} one but "
                          f"preset {preset!r} was asked for", stacklevel=3)
        if kind is None:
            named_lora = weights is not None and LORA in Path(str(weights)).name.lower() and LORA in kinds
            kind = known[1] if known and known[1] in kinds else LORA if named_lora else next(iter(kinds))
        if kind not in kinds:
            others = sorted(p for p, k in self.files.items() if kind in k)
            raise ValueError(f"{self.name}: kind={kind!r} is not available for preset {preset!r}; choose one "
                             f"of {list(kinds)}" + (f" (presets with {kind!r}: {others})" if others else ""))
        if kind == FULL and weights is not None:
            raise ValueError(f"{self.name}: preset {preset!r} is a full model; pass it as `model`, not `weights`")
        return Selection(preset, kind, kinds[kind])

    def _known(self, weights: PathLike | None) -> tuple[str, str] | None:
        if weights is None or not Path(weights).is_file():
            return None
        name = Path(weights).name
        return next(((p, k) for p, kinds in self.files.items() for k, f in kinds.items() if f == name), None)

    def identifier(self, selection: Selection) -> str:
        """The ``_pladis_model_id`` of a pipeline loaded with ``selection`` (matched by the adapter)."""
        return f"{self.model_id} {selection.preset} {selection.kind}"

    def load(self, base_loader: Callable[..., Any], model: PathLike | None = None, *,
             steps: int | str | None = None, kind: str | None = None, weights: PathLike | None = None,
             lora_scale: float = 1.0, **loader_kwargs: Any) -> Any:
        """Load ``model`` (default :attr:`base_model`) with ``base_loader``, apply the distilled weights.

        ``weights``: a local file, a local folder holding the preset's file, or a hub repo id (default
        :attr:`model_id`). ``model`` equal to :attr:`model_id` of a non-full backbone means "the weights
        from that repo on the default base". ``lora_scale`` scales a fused LoRA (kind ``"lora"`` only).
        """
        if model is not None and self.model_id != self.base_model and str(model).lower() == self.model_id.lower():
            model, weights = None, weights if weights is not None else model
        selection = self.select(steps, kind, weights)
        if lora_scale != 1.0 and selection.kind != LORA:
            raise ValueError(f"{self.name}: lora_scale applies to kind='lora' only, not {selection.kind!r}")
        path = None
        if selection.kind != FULL:
            path = resolve_file(weights if weights is not None else self.model_id, selection.filename)
        pipe = base_loader(model if model is not None else self.base_model, **loader_kwargs)
        if selection.kind == UNET:
            load_unet_checkpoint(pipe, path)
        elif selection.kind == LORA:
            fuse_lora(pipe, path, lora_scale=lora_scale)
        return self.finish(pipe, selection)

    def finish(self, pipe: Any, selection: Selection) -> Any:
        """Tag ``pipe`` with this backbone's id and preset, and install the preset's scheduler."""
        pipe._pladis_model_id = self.identifier(selection)
        pipe._pladis_preset = selection.preset
        self.presets[selection.preset].configure(pipe)
        return pipe

    def tiny(self, factory: Callable[..., Any], seed: int = 0, **kwargs: Any) -> Any:
        """``factory(seed, **kwargs)`` (a tiny random pipeline) tagged and configured as the 1-step preset."""
        return self.finish(factory(seed, **kwargs), self.select(1))

    def extra(self) -> dict[str, Any]:
        """The hub ids and file names, for ``AdapterSpec.extra``."""
        return {
            "model_id": self.model_id,
            "default_model": self.base_model,
            "default_preset": self.default_preset,
            "files": {preset: dict(kinds) for preset, kinds in self.files.items()},
        }


# --- offline test helpers ----------------------------------------------------------------------------------


def save_unet_checkpoint(unet: Any, path: PathLike, *, seed: int = 0, noise: float = 0.05) -> dict[str, Any]:
    """Write ``unet``'s weights plus seeded noise (a tiny "distilled" UNet) to a ``.safetensors`` or
    ``.bin`` file (``torch.save`` of a plain tensor dict); return the written state dict."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {key: (value + noise * torch.randn(value.shape, generator=generator, dtype=value.dtype)).contiguous()
             for key, value in unet.state_dict().items()}
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return state


def save_lora(unet: Any, folder: PathLike, weight_name: str, *, rank: int = 2, seed: int = 0,
              std: float = 0.1) -> dict[str, Any]:
    """Write a seeded random LoRA (``lora_alpha == rank``) on ``unet``'s attention projections in diffusers'
    format (``save_lora_weights``); ``unet`` itself is left untouched. Return the peft state dict
    (``...to_q.lora_A.weight`` / ``lora_B.weight`` keys, module names as in ``unet``)."""
    import copy

    import torch
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = copy.deepcopy(unet)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(LORA_TARGET_MODULES)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if ".lora_" in name:
                param.copy_(std * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    state = {key: value.detach().clone() for key, value in get_peft_model_state_dict(unet).items()}
    StableDiffusionXLPipeline.save_lora_weights(str(folder), unet_lora_layers=state, weight_name=weight_name)
    return state
