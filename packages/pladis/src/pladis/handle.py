"""What one ``pladis.apply`` installed on a denoiser, whichever way it acts (PLADIS processors on legacy
cross-attention, or wrappers intercepting SDPA in new-style attention): the common handle, and how a
PLADIS processor is told from any other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._checks import PLADISSettings

__all__ = ["STATE_ATTR", "HandleBase", "is_pladis", "unwrap", "unwrap_stash"]

#: The denoiser attribute holding its current handle.
STATE_ATTR = "_pladis_handle"


def is_pladis(processor: Any) -> bool:
    """Whether ``processor`` is one of PLADIS's (its class sets ``pladis_processor``)."""
    return bool(getattr(type(processor), "pladis_processor", False))


def unwrap(processor: Any) -> Any:
    """The processor PLADIS replaced, through any chain of PLADIS processors that know what they replaced
    (``.original``); itself for any other processor."""
    while is_pladis(processor) and processor.original is not None:
        processor = processor.original
    return processor


def unwrap_stash(denoiser: Any) -> None:
    """diffusers' ``fuse_qkv_projections`` keeps the processors it replaced (``original_attn_processors``)
    for ``unfuse_qkv_projections`` to put back: PLADIS's among them become the ones they replaced."""
    stash = getattr(denoiser, "original_attn_processors", None)
    if isinstance(stash, dict):
        for name, processor in stash.items():
            stash[name] = unwrap(processor)


@dataclass
class HandleBase:
    """The processors one ``apply`` set on ``modules`` (by name), the ones they replaced (``originals``),
    and the denoiser pre-hook it needs (:meth:`_observer`); ``remove()`` restores the very original objects."""

    denoiser: Any
    adapter: Any
    scale: float
    alpha: float
    temperature: float
    backend: str
    modules: dict[str, Any] = field(default_factory=dict)
    originals: dict[str, Any] = field(default_factory=dict)
    window: Any = None
    processors: dict[str, Any] = field(default_factory=dict)
    _hook: Any = None

    def __repr__(self) -> str:
        window = "whole trajectory" if self.window is None else repr(self.window)
        return (f"{type(self).__name__}({'active' if self.active else 'inactive'}, adapter={self.adapter.name!r}, "
                f"{self.settings!r}, layers={len(self.modules)} of {type(self.denoiser).__name__}, window={window})")

    @property
    def settings(self) -> PLADISSettings:
        """λ, α, temperature and back-end of this ``apply``."""
        return PLADISSettings(self.scale, self.alpha, self.temperature, self.backend)

    @property
    def layer_names(self) -> list[str]:
        """Names of the attention modules that carry a PLADIS processor."""
        return list(self.modules)

    @property
    def active(self) -> bool:
        """Whether PLADIS is in effect: this is the denoiser's latest ``apply``, not removed, and every
        module still carries its processor (diffusers calls such as ``enable_attention_slicing``,
        ``fuse_qkv_projections`` or ``set_attn_processor`` replace them all)."""
        return self._current and all(m.processor is self.processors[n] for n, m in self.modules.items())

    @property
    def _current(self) -> bool:
        return getattr(self.denoiser, STATE_ATTR, None) is self

    def remove(self) -> None:
        """Put back, on this handle's layers, the processors that were there before ``apply`` where a
        PLADIS processor is set (its own, or one put over it, e.g. the CLI's attention-map recorders); what
        another tool set since (attention slicing, IP-Adapter) stays. Idempotent."""
        if not self._current:
            return
        for name, module in self.modules.items():
            if is_pladis(module.processor):
                module.set_processor(self.originals[name])
        unwrap_stash(self.denoiser)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        delattr(self.denoiser, STATE_ATTR)

    def _install(self) -> None:
        """Set this handle's processors (and its pre-hook) on the denoiser."""
        for name, module in self.modules.items():
            module.set_processor(self.processors[name])
        self._reattach()

    def _hook_place(self) -> tuple[Any, list[int]] | None:
        """This handle's pre-hook and the order of the denoiser's pre-hooks now (for :meth:`_reattach`)."""
        return None if self._hook is None else (self._hook, list(self.denoiser._forward_pre_hooks))

    def _reattach(self, place: tuple[Any, list[int]] | None = None) -> None:
        """Make this handle the denoiser's current one again (its pre-hook back, under its old key and at its
        old place among the others when ``place`` is from :meth:`_hook_place`), processors as they are."""
        if self._hook is None and (observer := self._observer()) is not None:
            hook = self.denoiser.register_forward_pre_hook(observer, with_kwargs=True)
            self._hook = hook if place is None else _put_back(self.denoiser, hook, *place)
        setattr(self.denoiser, STATE_ATTR, self)

    def _observer(self) -> Callable[..., None] | None:
        """The denoiser forward pre-hook this handle needs (None: none)."""
        return None


def _put_back(denoiser: Any, hook: Any, old: Any, order: list[int]) -> Any:
    """Move the just-registered pre-hook ``hook`` to ``old``'s key, at its place in ``order``; returns ``old``
    (a RemovableHandle on the same dicts, valid again)."""
    hooks, with_kwargs = denoiser._forward_pre_hooks, denoiser._forward_pre_hooks_with_kwargs
    function = hooks.pop(hook.id)
    with_kwargs.pop(hook.id, None)
    others = dict(hooks)
    hooks.clear()
    for key in order:
        if key == old.id:
            hooks[key] = function
        elif key in others:
            hooks[key] = others.pop(key)
    hooks.update(others)
    with_kwargs[old.id] = True
    return old
