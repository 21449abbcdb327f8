"""PLADIS on new-style attention modules by intercepting the SDPA call inside the family's own processor.

diffusers 0.42.1 gives each transformer family its own attention class and processor (``FluxAttention`` +
``FluxAttnProcessor``, SD3's ``JointAttnProcessor2_0``, ``QwenDoubleStreamAttnProcessor2_0``, ``WanAttention``,
…), each with its own projections, norms, RoPE and token order. PLADIS keeps that code: a thin wrapper
(:class:`InterceptProcessor`) is set as the module's processor; it calls the original processor inside a
``TorchFunctionMode`` that catches ``torch.nn.functional.scaled_dot_product_attention`` (as diffusers' own
PAG hook, ``diffusers/hooks/layer_skip.py``, does) and replaces only the attention product:

* kind ``"cross"``: Eq. 15 on the intercepted q/k/v/mask (:func:`pladis.kernels.backends.attention`), for
  text cross-attention in new-style modules (``WanAttention.attn2``, LTX's);
* kind ``"joint"``: the mass-preserving sub-block rule of :func:`pladis.joint.joint_attention` for one
  softmax over concatenated [text | image] tokens (FLUX, FLUX.2, SD3, Qwen-Image).

How an adapter uses it — data only, in ``AdapterSpec``:

* ``layer_groups``: regexes over module names that declare *which* attention modules PLADIS may act on
  (e.g. FLUX ``{"double": r"^transformer_blocks\\.\\d+\\.attn$", "single": r"^single_transformer_blocks\\.\\d+\\.attn$"}``);
  only modules matching one of them are candidates, ``layers="all"`` selects all, a group name one group;
  ``block_index_pattern`` enables index ranges (an index selects the block of that index in every group).
* ``extra["attention"]``, a dict (see :func:`intercept_config`):
  ``kind`` ``"joint"`` | ``"cross"``; for ``"joint"`` also ``token_order`` ``"text_first"`` (``[txt|img]``) or
  ``"image_first"`` (``[img|txt]``) and ``text_length``, the name of the denoiser ``forward`` argument whose
  dim 1 is the number of text tokens (``"encoder_hidden_states"``: read by a model-level forward pre-hook,
  so single-stream blocks that only see the concatenated tokens know it too); optional ``call``: ``"all"``
  (default), the 0-based index of the SDPA call within one module call that gets PLADIS, or ``"text"``: the
  calls whose keys are as many as the text tokens (read as for ``text_length``, which it needs) — Wan I2V's
  text call, not its image-branch call, in checkpoints with and without the image branch — the others
  staying dense; optional ``timestep_scale``: what the
  denoiser's ``timestep`` argument is multiplied by to give the scheduler's timestep, for the step window
  (FLUX and Qwen-Image pipelines pass t / 1000: 1000).

Only the native SDPA path is intercepted: an attention back-end set with diffusers' ``set_attention_backend``
(flash, sage, xformers) bypasses ``F.scaled_dot_product_attention`` and PLADIS then does nothing;
:func:`apply_intercept` refuses such modules. λ = 0 or a step outside the window calls the original
processor directly (bit-identical); ``remove`` puts back the original processor objects and takes out the
one model-level hook.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .attention import mask_to_bias, scores_shape
from .handle import STATE_ATTR, HandleBase, unwrap
from .joint import joint_attention
from .kernels import backends
from .processor import StepWindow

__all__ = [
    "InterceptConfig",
    "InterceptHandle",
    "InterceptProcessor",
    "SDPAInterceptor",
    "apply_intercept",
    "attention_modules",
    "intercept_config",
    "uses_intercept",
]

EXTRA_KEY = "attention"
KINDS = ("cross", "joint")
TOKEN_ORDERS = ("text_first", "image_first")


@dataclass(frozen=True)
class InterceptConfig:
    """An adapter's ``extra["attention"]``, checked (see the module docstring)."""

    kind: str
    token_order: str = "text_first"
    text_length: str | None = None
    call: int | str | None = None  # None: every SDPA call of a module call; "text": those with text keys
    timestep_scale: float = 1.0


def uses_intercept(adapter: Any) -> bool:
    """Whether ``adapter`` (an ``AdapterSpec``) declares new-style attention (``extra["attention"]``)."""
    return isinstance(getattr(adapter, "extra", None), Mapping) and EXTRA_KEY in adapter.extra


def intercept_config(adapter: Any) -> InterceptConfig:
    """The adapter's ``extra["attention"]`` as an :class:`InterceptConfig`; ``ValueError`` names what is wrong."""
    raw = adapter.extra[EXTRA_KEY]
    where = f"adapter {adapter.name!r}: extra[{EXTRA_KEY!r}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a dict; got {type(raw).__name__}")
    allowed = ("kind", "token_order", "text_length", "call", "timestep_scale")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}['kind'] must be one of {KINDS}; got {kind!r}")
    order = raw.get("token_order", "text_first")
    if order not in TOKEN_ORDERS:
        raise ValueError(f"{where}['token_order'] must be one of {TOKEN_ORDERS}; got {order!r}")
    text_length = raw.get("text_length")
    call = raw.get("call", "all")
    if (kind == "joint" or call == "text") and not isinstance(text_length, str):
        raise ValueError(f"{where}['text_length'] must name the denoiser forward argument holding the text tokens")
    if call not in ("all", "text") and (isinstance(call, bool) or not isinstance(call, int) or call < 0):
        raise ValueError(f"{where}['call'] must be 'all', 'text' or an SDPA call index >= 0; got {call!r}")
    timestep_scale = raw.get("timestep_scale", 1.0)
    if isinstance(timestep_scale, bool) or not isinstance(timestep_scale, (int, float)) or not timestep_scale > 0:
        raise ValueError(f"{where}['timestep_scale'] must be a positive number; got {timestep_scale!r}")
    if not adapter.layer_groups:
        raise ValueError(f"adapter {adapter.name!r}: new-style attention needs layer_groups naming its modules")
    return InterceptConfig(kind, order, text_length, None if call == "all" else call, float(timestep_scale))


def attention_modules(denoiser: Any, adapter: Any) -> dict[str, Any]:
    """The attention modules (those with ``set_processor``) whose name matches one of the adapter's
    ``layer_groups``: where the adapter declares that text meets image."""
    patterns = [re.compile(p) for p in adapter.layer_groups.values()]
    return {
        name: module
        for name, module in denoiser.named_modules()
        if callable(getattr(module, "set_processor", None))
        and hasattr(module, "processor")
        and any(p.search(name) for p in patterns)
    }


class TextContext:
    """Facts of the current denoiser call shared by the processors of one ``apply``: the text length
    (read from the denoiser's ``forward`` argument named by the adapter) and the step window."""

    def __init__(self, denoiser: Any, config: InterceptConfig, window: StepWindow | None) -> None:
        self.text_argument, self.window, self.timestep_scale = config.text_length, window, config.timestep_scale
        self.text_length: int | None = None
        self.calls_at_timestep, self._timestep = 0, None  # the n-th denoiser call at this timestep (true CFG: 2)
        names = list(inspect.signature(denoiser.forward).parameters)
        self._text_position = names.index(self.text_argument) if self.text_argument in names else None
        self._time_position = names.index("timestep") if "timestep" in names else None

    def observe(self, module: Any, args: tuple, kwargs: dict) -> None:
        """A forward pre-hook of the denoiser (``with_kwargs=True``)."""
        text = _argument(args, kwargs, self.text_argument, self._text_position)
        self.text_length = int(text.shape[1]) if isinstance(text, torch.Tensor) and text.ndim >= 2 else None
        timestep = _argument(args, kwargs, "timestep", self._time_position)
        value = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) and timestep.numel() else timestep
        self.calls_at_timestep = self.calls_at_timestep + 1 if value == self._timestep else 1
        self._timestep = value
        if self.window is not None and timestep is not None:
            self.window.observe(timestep * self.timestep_scale)


def _argument(args: tuple, kwargs: dict, name: str | None, position: int | None) -> Any:
    if name is not None and name in kwargs:
        return kwargs[name]
    return args[position] if position is not None and len(args) > position else None


class SDPAInterceptor(TorchFunctionMode):
    """Inside this mode every ``F.scaled_dot_product_attention`` call goes to ``attend(q, k, v, mask, call)``
    (``call`` = its index within the mode) — unless it asks for dropout or a causal mask, which stay SDPA."""

    def __init__(self, attend: Any) -> None:
        super().__init__()
        self.attend, self.calls = attend, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        index, self.calls = self.calls, self.calls + 1
        bound = _sdpa_arguments(*args, **kwargs)
        if bound["dropout_p"] or bound["is_causal"]:
            return func(*args, **kwargs)
        query, key, value = bound["query"], bound["key"], bound["value"]
        if bound["enable_gqa"] and key.shape[-3] != query.shape[-3]:
            repeat = query.shape[-3] // key.shape[-3]
            key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
        if bound["scale"] is not None:  # the kernels use 1/√D: fold a custom softmax scale into q
            query = query * (bound["scale"] * math.sqrt(query.shape[-1]))
        result = self.attend(query, key, value, bound["attn_mask"], index)
        return func(*args, **kwargs) if result is None else result


def _sdpa_arguments(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return {
        "query": query, "key": key, "value": value, "attn_mask": attn_mask, "dropout_p": dropout_p,
        "is_causal": is_causal, "scale": scale, "enable_gqa": enable_gqa,
    }


class InterceptProcessor:
    """Wraps a family's own attention processor; replaces only its SDPA product by PLADIS (see module doc).

    ``kind``: "cross" (Eq. 15) or "joint" (:func:`pladis.joint.joint_attention`). Attributes not set here
    (``_attention_backend``, ``_parallel_config``…) are read from the original processor. Build one with
    :func:`wrap_processor`, which gives the wrapper the original ``__call__`` signature (diffusers drops
    keyword arguments a processor's signature does not name).
    """

    pladis_processor = True  # pladis.handle.is_pladis

    def __init__(
        self,
        original: Any,
        config: InterceptConfig,
        context: TextContext,
        scale: float,
        alpha: float,
        temperature: float,
        backend: str,
    ) -> None:
        self.original, self.config, self.context = original, config, context
        self.scale, self.alpha, self.temperature, self.backend = scale, alpha, temperature, backend
        # recorder(query, key, value, attn_mask, text, active) sees every replaced product (attention maps; text:
        # the joint text span, None for "cross"); with one set, inactive calls are intercepted too and left to
        # SDPA (the same bits)
        self.recorder: Any = None

    def __getattr__(self, name: str) -> Any:
        if name == "original":  # not yet set (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.original, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """The wrapper's own fields are its own; others (``set_attention_backend``'s ``_attention_backend``)
        reach the original processor, which reads them."""
        if name in _WRAPPER_FIELDS:
            object.__setattr__(self, name, value)
        else:
            setattr(self.original, name, value)

    def __repr__(self) -> str:
        return (
            f"PLADIS[{self.config.kind}]({type(self.original).__name__}, scale={self.scale}, "
            f"alpha={self.alpha}, temperature={self.temperature}, backend={self.backend!r})"
        )

    def is_active(self) -> bool:
        """Whether PLADIS replaces the attention of the next call (λ ≠ 0, inside the step window)."""
        window = self.context.window
        return self.scale != 0.0 and (window is None or window.contains_current_step())

    def _run(self, attn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.is_active() and self.recorder is None:
            return self.original(attn, *args, **kwargs)
        refused = unserved_backend(self.original)
        if refused is not None:
            raise RuntimeError(
                f"pladis: the attention back-end is {refused!r} (set after pladis.apply); PLADIS replaces "
                f"torch's SDPA calls only (back-ends {', '.join(sorted(SDPA_BACKENDS))}): call "
                "denoiser.set_attention_backend('native') or pladis.remove(pipe)"
            )
        with SDPAInterceptor(self._attend):
            return self.original(attn, *args, **kwargs)

    def _attend(self, query, key, value, attn_mask, call: int) -> torch.Tensor | None:
        """The attention product for one intercepted SDPA call (None: leave it to SDPA)."""
        if self.config.call == "text":
            if key.shape[-2] != self.context.text_length:
                return None
        elif self.config.call is not None and call != self.config.call:
            return None
        text = None if self.config.kind == "cross" else self.text_span(key.shape[-2])
        if self.recorder is not None:
            self.recorder(query, key, value, attn_mask, text, self.is_active())
            if not self.is_active():
                return None
        if self.config.kind == "cross":
            return self.attend_cross(query, key, value, attn_mask)
        return self.attend_joint(query, key, value, attn_mask, text)

    def attend_cross(self, query, key, value, attn_mask) -> torch.Tensor:
        """Eq. 15 on (B, H, N, D) heads (subclasses, e.g. attention-map recorders, override this)."""
        bias = None if attn_mask is None else mask_to_bias(attn_mask, scores_shape(query, key))
        return backends.attention(query, key, value, bias, self.scale, self.alpha, self.temperature, self.backend)

    def attend_joint(self, query, key, value, attn_mask, text: tuple[int, int]) -> torch.Tensor:
        """The joint sub-block rule on (B, H, N, D) heads (subclasses override this)."""
        return joint_attention(
            query, key, value, attn_mask, text=text, scale=self.scale, alpha=self.alpha,
            temperature=self.temperature, backend=self.backend,
        )

    def text_span(self, n_tokens: int) -> tuple[int, int]:
        """[start, stop) of the text keys among ``n_tokens`` joint tokens, from the denoiser call's text length."""
        length = self.context.text_length
        if length is None or not 0 < length <= n_tokens:
            raise RuntimeError(
                f"pladis: joint attention over {n_tokens} tokens, but the text length read from the denoiser's "
                f"{self.context.text_argument!r} argument is {length}; call the denoiser itself (its blocks alone "
                "do not tell PLADIS where the text is)"
            )
        return (0, length) if self.config.token_order == "text_first" else (n_tokens - length, n_tokens)


_WRAPPER_FIELDS = frozenset({"original", "config", "context", "scale", "alpha", "temperature", "backend", "recorder"})
#: diffusers attention back-ends that compute through torch's scaled_dot_product_attention (interceptable).
SDPA_BACKENDS = frozenset({"native", "_native_cudnn", "_native_efficient", "_native_flash", "_native_math"})


def unserved_backend(processor: Any) -> str | None:
    """The name of ``processor``'s diffusers attention back-end when PLADIS cannot intercept it (else None):
    its own, or for None diffusers' active one (``DIFFUSERS_ATTN_BACKEND``, the ``attention_backend``
    context, the last ``set_attention_backend``, which ``reset_attention_backend`` leaves in place)."""
    chosen = getattr(processor, "_attention_backend", None)
    if chosen is None and hasattr(processor, "_attention_backend"):
        from diffusers.models.attention_dispatch import _AttentionBackendRegistry

        chosen = _AttentionBackendRegistry.get_active_backend()[0]
    name = getattr(chosen, "value", chosen)
    return None if name is None or name in SDPA_BACKENDS else str(name)


@functools.cache
def _wrapper_class(original_class: type) -> type:
    """An :class:`InterceptProcessor` subclass whose ``__call__`` has ``original_class.__call__``'s signature."""

    def __call__(self, attn, *args, **kwargs):
        return self._run(attn, *args, **kwargs)

    __call__.__signature__ = inspect.signature(original_class.__call__)
    return type(f"PLADIS{original_class.__name__}", (InterceptProcessor,), {"__call__": __call__})


def wrap_processor(original: Any, config: InterceptConfig, context: TextContext, *settings: Any) -> InterceptProcessor:
    """An :class:`InterceptProcessor` around ``original`` (settings: scale, alpha, temperature, backend)."""
    return _wrapper_class(type(original))(original, config, context, *settings)


@dataclass(repr=False)  # HandleBase.__repr__
class InterceptHandle(HandleBase):
    """What one ``apply`` on new-style attention installed (a wrapper per module, the text-length hook
    of ``context``); ``remove()`` restores the original processor objects and the denoiser's hook dicts."""

    context: TextContext | None = None

    def _observer(self) -> Any:
        return self.context.observe


def apply_intercept(
    denoiser: Any,
    adapter: Any,
    selected: dict[str, Any],
    *,
    scale: float,
    alpha: float,
    temperature: float,
    backend: str,
    window: StepWindow | None,
) -> InterceptHandle:
    """Wrap the processors of the ``selected`` modules (checked settings) and hook the denoiser; an earlier
    PLADIS handle on it is removed first. Nothing changes when a module cannot be served."""
    config = intercept_config(adapter)
    originals = {name: unwrap(module.processor) for name, module in selected.items()}
    for name, proc in originals.items():
        if isinstance(proc, torch.nn.Module):  # IP-Adapter processors hold weights of their own
            raise ValueError(
                f"attention module {name!r} uses {type(proc).__name__}, a processor with weights of its own "
                "(an IP-Adapter), whose extra attention PLADIS cannot tell from the text attention; unload it "
                "(pipe.unload_ip_adapter()) or restrict `layers`"
            )
        refused = unserved_backend(proc)
        if refused is not None:
            raise ValueError(
                f"attention module {name!r} runs the attention back-end {refused!r}; PLADIS intercepts torch's "
                f"SDPA only (back-ends {', '.join(sorted(SDPA_BACKENDS))}): call denoiser.set_attention_backend('native') first"
            )
    previous = getattr(denoiser, STATE_ATTR, None)
    if previous is not None:
        previous.remove()
    context = TextContext(denoiser, config, window)
    settings = (scale, alpha, temperature, backend)
    processors = {name: wrap_processor(originals[name], config, context, *settings) for name in selected}
    handle = InterceptHandle(denoiser, adapter, scale, alpha, temperature, backend, dict(selected), originals,
                             window, processors, context=context)
    handle._install()
    return handle

