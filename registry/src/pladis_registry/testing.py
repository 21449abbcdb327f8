"""The adapter contract test: ``check_adapter(SPEC)`` checks an adapter on its tiny pipeline in one line.

Any adapter, built-in or third-party, calls it from its own tests::

    from pladis_registry.testing import check_adapter
    from my_package.adapter import SPEC

    def test_adapter_contract():
        check_adapter(SPEC)

It needs ``pladis`` (the library under test) and the ``kit`` extra installed, and ``SPEC.tiny`` (or a
``tiny=`` factory). The adapter is put alone in a registry of its own, so the check does not depend on
which other adapters are installed. What it asserts, for every preset of the adapter:

* the preset runs on the tiny pipeline: its scheduler installs, the call with PLADIS off gives finite
  output, the same on a second call with the same seed, and the pipeline auto-detects this adapter (a non-generic adapter serves its own tiny pipeline);
* λ = 0 gives output bit-identical to never applying, and λ = 2 gives finite output that differs;
* PLADIS adds no denoiser calls (counted with a forward pre-hook on the denoiser);
* exactly the declared text-attention modules are affected: ``handle.layer_names`` equals the declared
  set, and every other module keeps its processor object and its forward-hook dicts;
* ``remove()`` restores the very original objects: processors by identity, hook dicts as before, and
  the output is again bit-identical to the baseline.

And once: every layer group selects the modules its regex names (the groups do not overlap and cover
every declared module), and with ``block_index_pattern`` each block index and the full index range
select the modules of those blocks.

Checks go through the handle's public surface (``layer_names``) and the modules' processors and hooks, so
adapters whose PLADIS acts through forward hooks instead of processors fit as well. "Declared" modules
are, by default, the diffusers attention modules that report ``is_cross_attention``, or, for an adapter
declaring ``extra["attention"]`` (new-style and joint attention, reached by SDPA interception), the
attention modules its layer groups name; ``text_attention=`` names them otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .hookspecs import hookimpl
from .manager import Registry, make_plugin_manager
from .spec import AdapterSpec

__all__ = [
    "check_adapter",
    "cross_attention_names",
    "declared_attention_names",
    "isolated_registry",
    "module_state",
]

_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)
PROMPT = "a red circle left of a blue square"


def isolated_registry(spec: AdapterSpec) -> Registry:
    """A registry holding ``spec`` only (no entry-point plugins are loaded)."""

    class _Plugin:
        @staticmethod
        @hookimpl
        def pladis_register_adapters(register: Callable[[AdapterSpec], None]) -> None:
            register(spec)

    return Registry(make_plugin_manager(autoload=False, plugins=[_Plugin()]))


def cross_attention_names(denoiser: Any) -> set[str]:
    """Names of the modules of ``denoiser`` that report ``is_cross_attention`` (diffusers' flag)."""
    return {name for name, module in denoiser.named_modules() if getattr(module, "is_cross_attention", False) is True}


def declared_attention_names(spec: AdapterSpec, denoiser: Any) -> set[str]:
    """The modules ``spec`` declares PLADIS acts on: with ``extra["attention"]`` (the SDPA-interception
    mechanism of new-style and joint attention) the attention modules (``processor`` and ``set_processor``)
    whose name matches a layer group; otherwise :func:`cross_attention_names`."""
    if "attention" not in spec.extra:
        return cross_attention_names(denoiser)
    patterns = [re.compile(p) for p in spec.layer_groups.values()]
    return {name for name, module in denoiser.named_modules()
            if hasattr(module, "processor") and callable(getattr(module, "set_processor", None))
            and any(p.search(name) for p in patterns)}


def module_state(denoiser: Any) -> dict[str, tuple[Any, dict[str, tuple]]]:
    """Per module name: its processor object (None if it has none) and its forward-hook dicts (items)."""
    return {
        name: (getattr(module, "processor", None),
               {attr: tuple(getattr(module, attr, {}).items()) for attr in _HOOK_DICTS})
        for name, module in denoiser.named_modules()
    }


def _changed(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> set[str]:
    """Modules whose processor is another object or whose hook dicts differ (by key and object)."""

    def same_hooks(a: tuple, b: tuple) -> bool:
        return len(a) == len(b) and all(ka == kb and va is vb for (ka, va), (kb, vb) in zip(a, b, strict=True))

    def same(a: tuple, b: tuple) -> bool:
        return a[0] is b[0] and all(same_hooks(a[1][attr], b[1][attr]) for attr in _HOOK_DICTS)

    return {name for name in before.keys() | after.keys()
            if name not in before or name not in after or not same(before[name], after[name])}


def _denoiser(pipe: Any) -> Any:
    for attr in ("unet", "transformer"):
        if getattr(pipe, attr, None) is not None:
            return getattr(pipe, attr)
    raise AssertionError(f"the tiny {type(pipe).__name__} has neither `unet` nor `transformer`")


def _as_array(output: Any) -> Any:
    import numpy as np

    for attr in ("images", "frames"):
        if hasattr(output, attr):
            output = getattr(output, attr)
            break
    else:
        output = output[0]
    if hasattr(output, "detach"):
        return output.detach().float().cpu().numpy()
    if isinstance(output, (list, tuple)) and output and not hasattr(output[0], "shape"):
        return np.stack([np.asarray(image) for image in output])
    return np.asarray(output)


class _Runner:
    """Calls the tiny pipeline with one preset, a fixed seed, and counts the denoiser calls."""

    def __init__(self, pipe: Any, call_kwargs: Mapping[str, Any], prompt: str, seed: int):
        self.pipe, self.prompt, self.seed = pipe, prompt, seed
        self.call_kwargs = dict(call_kwargs)
        self.denoiser = _denoiser(pipe)

    def __call__(self) -> tuple[Any, int]:
        import torch

        calls = []
        hook = self.denoiser.register_forward_pre_hook(lambda *_: calls.append(1))
        try:
            output = self.pipe(prompt=self.prompt, generator=torch.Generator().manual_seed(self.seed), **self.call_kwargs)
        finally:
            hook.remove()
        return _as_array(output), len(calls)


def check_adapter(
    spec: AdapterSpec,
    *,
    tiny: Callable[..., Any] | None = None,
    call_kwargs: Mapping[str, Any] | None = None,
    text_attention: Callable[[Any], Iterable[str]] | None = None,
    presets: Iterable[str] | None = None,
    prompt: str = PROMPT,
    seed: int = 0,
) -> None:
    """Assert the adapter contract (module docstring) for ``spec`` on its tiny pipeline.

    ``tiny`` overrides ``spec.tiny`` (the generic adapter has none of its own), ``call_kwargs`` overrides
    ``spec.tiny_call_kwargs`` (laid over each preset's call kwargs), ``text_attention(denoiser)`` names the
    modules the adapter declares (default: :func:`declared_attention_names`), ``presets`` restricts the
    presets run (default: all). Raises ``AssertionError`` naming the adapter, preset and what failed.
    """
    import pladis

    factory = tiny or spec.tiny
    assert factory is not None, f"adapter {spec.name!r} declares no tiny factory (AdapterSpec.tiny); pass tiny="
    assert spec.presets, f"adapter {spec.name!r} declares no presets"
    names = list(spec.presets if presets is None else presets)
    unknown = sorted(set(names) - set(spec.presets))
    assert not unknown, f"adapter {spec.name!r}: presets {unknown} are not declared ({sorted(spec.presets)})"
    if spec.default_preset is not None:
        assert spec.default_preset in spec.presets, f"{spec.name}: default_preset is not a preset"
    registry = isolated_registry(spec)
    pipe = factory(seed=seed)
    denoiser = _denoiser(pipe)
    declared = set(text_attention(denoiser)) if text_attention else declared_attention_names(spec, denoiser)
    assert declared, f"adapter {spec.name!r}: its tiny {type(denoiser).__name__} has no text-attention modules"
    extra = dict(spec.tiny_call_kwargs if call_kwargs is None else call_kwargs)

    def apply(**settings: Any) -> Any:
        return pladis.apply(pipe, backbone=spec.name, registry=registry, **settings)

    if not spec.generic:
        handle = pladis.apply(pipe, registry=registry)
        assert handle.adapter is spec, f"{spec.name}: its tiny pipeline is not auto-detected as this adapter"
        handle.remove()
    for name in names:
        where = f"adapter {spec.name!r}, preset {name!r}"
        kwargs = spec.presets[name].configure(pipe)
        kwargs.update(extra)
        run = _Runner(pipe, kwargs, prompt, seed)
        original = module_state(denoiser)
        baseline, calls = run()
        assert calls > 0, f"{where}: the denoiser was never called"
        assert _identical(run()[0], baseline), (
            f"{where}: two calls with the same seed differ: the tiny pipeline is not deterministic "
            "(a model left in training mode, with dropout?)")
        assert _finite(baseline), f"{where}: the output without PLADIS is not finite"

        handle = apply(scale=0.0)
        assert set(handle.layer_names) == declared, (
            f"{where}: PLADIS took {sorted(set(handle.layer_names) ^ declared)} differently from the declared "
            f"text-attention modules (handle.layer_names vs declared)")
        touched = _changed(original, module_state(denoiser)) - {""}
        assert touched <= declared, f"{where}: apply() changed modules outside the declared ones: {sorted(touched - declared)}"
        off, off_calls = run()
        assert off_calls == calls, f"{where}: λ = 0 made {off_calls} denoiser calls instead of {calls}"
        assert _identical(off, baseline), f"{where}: λ = 0 is not bit-identical to never applying PLADIS"

        handle = apply(scale=2.0)
        on, on_calls = run()
        assert on_calls == calls, f"{where}: λ = 2 made {on_calls} denoiser calls instead of {calls}"
        assert _finite(on), f"{where}: the output with λ = 2 is not finite"
        assert not _identical(on, baseline), f"{where}: λ = 2 gives the same output as PLADIS off"
        handle.remove()
        restored = _changed(original, module_state(denoiser))
        assert not restored, f"{where}: remove() did not restore the original processors/hooks of {sorted(restored)}"
        again, _ = run()
        assert _identical(again, baseline), f"{where}: the output after remove() differs from the baseline"
    _check_layer_groups(spec, denoiser, declared, apply)


def _check_layer_groups(spec: AdapterSpec, denoiser: Any, declared: set[str], apply: Callable[..., Any]) -> None:
    """Each layer group (and block index) selects exactly the declared modules it names."""
    expected: dict[str, set[str]] = {}
    for module in sorted(declared):
        group = next((g for g, pattern in spec.layer_groups.items() if re.search(pattern, module)), None)
        if spec.layer_groups:
            assert group is not None, f"adapter {spec.name!r}: module {module!r} is in none of the layer groups"
        expected.setdefault(group or module.split(".", 1)[0], set()).add(module)
    for group in spec.layer_groups:
        assert group in expected, f"adapter {spec.name!r}: layer group {group!r} selects nothing on the tiny pipeline"
    for group, modules in expected.items():
        handle = apply(layers=group)
        assert set(handle.layer_names) == modules, (
            f"adapter {spec.name!r}: layers={group!r} selected {sorted(handle.layer_names)}, not {sorted(modules)}")
        handle.remove()
    if spec.block_index_pattern is None:
        return
    blocks: dict[int, set[str]] = {}
    for module in declared:
        found = re.search(spec.block_index_pattern, module)
        if found:
            blocks.setdefault(int(found.group(1)), set()).add(module)
    assert blocks, f"adapter {spec.name!r}: block_index_pattern matches no declared module of the tiny pipeline"
    selectors = [(index, modules) for index, modules in blocks.items()]
    selectors.append((f"{min(blocks)}-{max(blocks)}", set().union(*blocks.values())))
    for selector, modules in selectors:
        handle = apply(layers=selector)
        assert set(handle.layer_names) == modules, (
            f"adapter {spec.name!r}: layers={selector!r} selected {sorted(handle.layer_names)}, not {sorted(modules)}")
        handle.remove()


def _finite(array: Any) -> bool:
    import numpy as np

    return bool(np.isfinite(array).all())


def _identical(a: Any, b: Any) -> bool:
    import numpy as np

    return a.shape == b.shape and bool(np.array_equal(a, b))

