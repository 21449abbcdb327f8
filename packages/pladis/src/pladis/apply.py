"""``pladis.apply`` / ``pladis.remove`` / ``pladis.enabled``: install PLADIS on a pipeline's cross-attention."""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterable, Iterator
from typing import Any

from pladis_registry import AdapterSpec, Registry

from ._checks import PLADISSettings
from .adapters import find_denoiser, resolve_adapter
from .experts import ExpertsHandle, second_denoisers
from .handle import STATE_ATTR, HandleBase, is_pladis, unwrap, unwrap_stash
from .intercept import apply_intercept, attention_modules, uses_intercept
from .processor import PLADISAttnProcessor, StepWindow

__all__ = ["PLADISHandle", "apply", "enabled", "remove", "cross_attention_modules"]

# Processors whose cross-attention semantics PLADISAttnProcessor reproduces exactly.
_WRAPPABLE = {"AttnProcessor", "AttnProcessor2_0", "SanaAttnProcessor2_0", "AttnProcessorNPU", "XFormersAttnProcessor"}
LayerSelector = str | int | range | Iterable[str | int | range]


class PLADISHandle(HandleBase):
    """What one ``apply`` on legacy cross-attention installed (:class:`PLADISAttnProcessor` per module,
    a step-window hook when there is a window); ``remove()`` restores the exact original processor objects."""

    def _observer(self) -> Any:
        return None if self.window is None else _timestep_observer(self.window, self.denoiser)


def apply(
    pipe_or_denoiser: Any,
    *,
    scale: float = 2.0,
    alpha: float = 1.5,
    temperature: float = 1.0,
    layers: LayerSelector = "all",
    backbone: str | None = None,
    start: float = 0.0,
    end: float = 1.0,
    backend: str = "auto",
    registry: Registry | None = None,
) -> PLADISHandle:
    """Replace the selected cross-attention of a diffusers pipeline (or denoiser) with PLADIS (Eq. 15).

    ``scale`` is λ (paper default 2.0), ``alpha`` the sparse map (1.5 entmax15, 2 sparsemax),
    ``temperature`` divides the sparse logits. ``layers`` is "all", a layer-group name of the adapter
    (UNets: "down", "mid", "up"), a block index / ``range`` / "a-b" string for DiT adapters, or a
    list of these. ``backbone`` names the adapter (default: auto-detected). ``start``/``end`` restrict
    PLADIS to a window of the denoising trajectory, as fractions read off the timestep:
    progress = 1 − t/T (T = the scheduler's ``num_train_timesteps``), 0 = pure noise, 1 = clean; the
    default [0, 1] is the whole trajectory, as in the paper. ``backend`` picks the attention
    implementation ("auto" = the fastest available; "eager", "compile", "triton", "native"). Every other processor —
    self-attention, or processors another tool installed — stays as it was. Applying again replaces
    the settings instead of stacking. Nothing is changed when an argument is invalid.
    """
    settings = PLADISSettings(scale, alpha, temperature, backend)
    window = StepWindow(start, end, _num_train_timesteps(pipe_or_denoiser))
    if backbone is not None and not isinstance(backbone, str):
        raise ValueError(f"backbone must be an adapter name (a string) or None; got {backbone!r}")
    if registry is not None and not isinstance(registry, Registry):
        raise ValueError(f"registry must be a pladis_registry.Registry or None; got {type(registry).__name__}")
    if experts := second_denoisers(pipe_or_denoiser):  # Wan 2.2 A14B: transformer and transformer_2
        return _apply_experts(pipe_or_denoiser, experts, backbone, registry, scale=scale, alpha=alpha,
                              temperature=temperature, layers=layers, start=start, end=end, backend=backend)
    denoiser = find_denoiser(pipe_or_denoiser)
    adapter = resolve_adapter(pipe_or_denoiser, denoiser, backbone, registry)
    if uses_intercept(adapter):  # new-style attention modules (joint / cross kinds): pladis.intercept
        candidates = attention_modules(denoiser, adapter)
        if not candidates:
            raise ValueError(f"{type(denoiser).__name__} has none of the attention modules adapter {adapter.name!r} declares")
        return apply_intercept(
            denoiser, adapter, _select(adapter, candidates, layers), scale=settings.scale, alpha=settings.alpha,
            temperature=settings.temperature, backend=settings.backend, window=None if window.whole else window,
        )
    candidates = cross_attention_modules(denoiser)
    if not candidates:
        raise ValueError(f"{type(denoiser).__name__} has no cross-attention modules: PLADIS has nothing to act on")
    selected = _select(adapter, candidates, layers)

    previous: PLADISHandle | None = getattr(denoiser, STATE_ATTR, None)
    # a module carrying a PLADIS processor (of an earlier apply, or one a diffusers call put back) keeps
    # the processor that one replaced
    originals = {name: unwrap(module.processor) for name, module in selected.items()}
    _check_wrappable(originals)
    style = None if adapter.attention_style == "auto" else adapter.attention_style
    if window.whole:
        window = None
    # Everything that can fail is built before the model is touched: a failing re-apply keeps the
    # previous handle in place.
    processors = {
        name: PLADISAttnProcessor(original=originals[name], style=style, window=window, settings=settings)
        for name in selected
    }
    s = settings
    handle = PLADISHandle(
        denoiser, adapter, s.scale, s.alpha, s.temperature, s.backend, dict(selected), originals, window, processors
    )
    if previous is not None:
        previous.remove()
    handle._install()
    return handle


def remove(pipe_or_denoiser: Any) -> bool:
    """Restore the original processors of a pipeline PLADIS was applied to; False if it carried none.

    Also takes out PLADIS processors that outlived their handle (e.g. put back by diffusers'
    ``unfuse_qkv_projections`` after a ``remove``)."""
    removed = any([remove(model) for model in second_denoisers(pipe_or_denoiser).values()])
    denoiser = find_denoiser(pipe_or_denoiser)
    handle: PLADISHandle | None = getattr(denoiser, STATE_ATTR, None)
    removed = removed or handle is not None
    if handle is not None:
        handle.remove()  # (its stash included)
    else:
        unwrap_stash(denoiser)
    for module in _attention_modules(denoiser).values():
        original = unwrap(module.processor)
        if original is not module.processor and not is_pladis(original):
            module.set_processor(original)
            removed = True
    return removed


@contextlib.contextmanager
def enabled(pipe_or_denoiser: Any, **settings: Any) -> Iterator[PLADISHandle]:
    """``with pladis.enabled(pipe, scale=2.0): pipe(...)`` — apply on entry; on exit every attention
    module gets back the very processor object it had before the block, and a handle applied before it
    is the current one again (active if its processors were still in place, else inactive). A pipeline
    with two denoisers (Wan 2.2's ``transformer`` and ``transformer_2``) gets both back."""
    denoisers = [find_denoiser(pipe_or_denoiser), *second_denoisers(pipe_or_denoiser).values()]
    befores: list[PLADISHandle | None] = [getattr(denoiser, STATE_ATTR, None) for denoiser in denoisers]
    places = [None if before is None else before._hook_place() for before in befores]
    snapshots = [_processors_of(denoiser) for denoiser in denoisers]
    handle = apply(pipe_or_denoiser, **settings)
    try:
        yield handle
    finally:
        for denoiser, before, snapshot, place in zip(denoisers, befores, snapshots, places, strict=True):
            _restore(denoiser, before, snapshot, place)


def _restore(denoiser: Any, before: Any, snapshot: dict[str, Any], place: Any = None) -> None:
    """Put ``denoiser`` back as it was: the current PLADIS handle removed, every attention module's very
    processor object of ``snapshot`` set again, and ``before`` (the handle current then) current again, its
    pre-hook under its old key and place (an earlier handle whose processors a diffusers call had replaced
    stays inactive)."""
    current = getattr(denoiser, STATE_ATTR, None)
    if current is not None:
        current.remove()
    for name, module in _attention_modules(denoiser).items():
        if name in snapshot and module.processor is not snapshot[name]:
            module.set_processor(snapshot[name])
    if before is not None:
        before._reattach(place)


def _apply_experts(pipe: Any, experts: dict[str, Any], backbone: str | None, registry: Registry | None,
                   **settings: Any) -> ExpertsHandle:
    """``apply`` on the pipeline's ``transformer`` and on each second denoiser, with the adapter detected on
    the pipeline; when one of them fails every denoiser is left as it was (its earlier handle included)."""
    adapter = resolve_adapter(pipe, find_denoiser(pipe), backbone, registry)
    models = [find_denoiser(pipe), *experts.values()]
    befores = [(model, getattr(model, STATE_ATTR, None), _processors_of(model)) for model in models]
    handles: list[Any] = []
    try:
        for model in models:
            handles.append(apply(model, backbone=adapter.name, registry=registry, **settings))
    except Exception:
        for model, before, snapshot in befores:
            _restore(model, before, snapshot)
        raise
    return ExpertsHandle(handles, ["", *(f"{name}." for name in experts)])


def cross_attention_modules(denoiser: Any) -> dict[str, Any]:
    """Every diffusers ``Attention`` module with ``is_cross_attention`` (self-attention never)."""
    from diffusers.models.attention_processor import Attention

    return {
        name: module
        for name, module in denoiser.named_modules()
        if isinstance(module, Attention) and module.is_cross_attention
    }


def _attention_modules(denoiser: Any) -> dict[str, Any]:
    """Every module with an attention processor (self- and cross-attention), by name."""
    return {
        name: module
        for name, module in denoiser.named_modules()
        if hasattr(module, "set_processor") and hasattr(module, "processor")
    }


def _processors_of(denoiser: Any) -> dict[str, Any]:
    return {name: module.processor for name, module in _attention_modules(denoiser).items()}


def _num_train_timesteps(pipe_or_denoiser: Any) -> int:
    scheduler = getattr(pipe_or_denoiser, "scheduler", None)
    config = getattr(scheduler, "config", None)
    return int(getattr(config, "num_train_timesteps", None) or 1000)


def _timestep_observer(window: StepWindow, denoiser: Any) -> Any:
    """A forward pre-hook telling ``window`` the timestep of each denoiser call, passed by keyword or at
    its place in ``denoiser.forward`` (2nd for UNets, 3rd for SANA's transformer)."""
    names = list(inspect.signature(denoiser.forward).parameters)
    position = names.index("timestep") if "timestep" in names else None

    def observe(module: Any, args: tuple, kwargs: dict) -> None:
        if "timestep" in kwargs:
            window.observe(kwargs["timestep"])
        elif position is not None and len(args) > position:
            window.observe(args[position])

    return observe


def _select(adapter: AdapterSpec, candidates: dict[str, Any], layers: LayerSelector) -> dict[str, Any]:
    layers = _selectors(layers)
    if not layers:
        raise ValueError("layers must name at least one layer group; got an empty selection")
    groups = {name: adapter.group_of(name) for name in candidates}
    chosen: set[str] = set()
    for selector in layers:
        if selector == "all":
            chosen.update(candidates)
        elif isinstance(selector, str) and selector in candidates:
            chosen.add(selector)
        elif isinstance(selector, str) and selector in groups.values():
            chosen.update(n for n, g in groups.items() if g == selector)
        elif (indices := _indices(selector)) is not None and adapter.block_index_pattern:
            picked = {n for n in candidates if adapter.block_index(n) in indices}
            if not picked:
                raise ValueError(f"layers: no cross-attention block has an index in {selector!r}")
            chosen.update(picked)
        else:
            valid = ["all", *sorted(set(groups.values()))]
            if adapter.block_index_pattern:
                valid.append("block indices such as 3, range(0, 8) or '0-7'")
            raise ValueError(f"unknown layer group {selector!r} for backbone {adapter.name!r}; choose from {valid}")
    return {name: candidates[name] for name in candidates if name in chosen}


def _selectors(layers: Any) -> list[str | int | range]:
    """``layers`` as a list of selectors; a string is split at commas ("mid,up", as the CLI's --layers)."""
    items = [layers] if isinstance(layers, (str, int, range)) else layers
    if isinstance(items, (bytes, dict)) or not isinstance(items, Iterable):
        raise ValueError(
            f"layers must be 'all', a layer-group name, a block index or range, or a list of these; got {layers!r}"
        )
    selectors: list[str | int | range] = []
    for item in items:
        if isinstance(item, str):
            selectors.extend(part.strip() for part in item.split(",") if part.strip())
            if not item.strip() or any(not part.strip() for part in item.split(",")):
                raise ValueError(f"layers: empty layer-group name in {item!r}")
        elif isinstance(item, range) or (isinstance(item, int) and not isinstance(item, bool)):
            selectors.append(item)
        else:
            raise ValueError(f"layers: each selector must be a string, an int or a range; got {item!r}")
    return selectors


def _indices(selector: Any) -> set[int] | None:
    if isinstance(selector, bool):
        return None
    if isinstance(selector, int):
        return {selector}
    if isinstance(selector, range):
        return set(selector)
    if isinstance(selector, str) and (m := re.fullmatch(r"(\d+)-(\d+)", selector.strip())):
        return set(range(int(m.group(1)), int(m.group(2)) + 1))
    return None


def _check_wrappable(originals: dict[str, Any]) -> None:
    foreign = {
        name: type(proc).__name__
        for name, proc in originals.items()
        if type(proc).__name__ not in _WRAPPABLE and not isinstance(proc, PLADISAttnProcessor)
    }
    if foreign:
        name, cls = next(iter(foreign.items()))
        raise ValueError(
            f"cross-attention {name!r} uses {cls}, whose behaviour PLADIS cannot reproduce "
            f"(supported: {sorted(_WRAPPABLE)}); {len(foreign)} module(s) affected. "
            "Unload that processor (IP-Adapter: pipe.unload_ip_adapter(); attention slicing: "
            "pipe.disable_attention_slicing(); fused QKV: pipe.unfuse_qkv_projections()) or restrict `layers`."
        )
