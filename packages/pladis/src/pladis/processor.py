"""A diffusers attention processor that computes cross-attention with PLADIS (Eq. 15)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._checks import PLADISSettings, as_real
from .attention import mask_to_bias, scores_shape
from .kernels import backends

__all__ = ["PLADISAttnProcessor", "StepWindow", "norms_span_heads", "run_attention"]


class StepWindow:
    """Where PLADIS acts along the denoising trajectory, shared by the processors of one ``apply``.

    Progress is read off the timestep the denoiser is called with: ``progress = 1 − t / T`` (T = the
    scheduler's ``num_train_timesteps``), so 0 is pure noise and 1 the clean image. PLADIS is active
    while ``start ≤ progress ≤ end``; before the first denoiser call of a run it counts as active.
    """

    def __init__(self, start: float = 0.0, end: float = 1.0, num_train_timesteps: int = 1000) -> None:
        start_value, end_value = (_fraction(value, name) for value, name in ((start, "start"), (end, "end")))
        if start_value > end_value:
            raise ValueError(f"start must be <= end; got start={start!r}, end={end!r}")
        self.start, self.end = start_value, end_value
        self.num_train_timesteps = int(num_train_timesteps)
        self.progress: float | None = None

    def __repr__(self) -> str:
        where = "not yet called" if self.progress is None else f"progress={self.progress:.3f}"
        return f"StepWindow(start={self.start:g}, end={self.end:g}, {where})"

    @property
    def whole(self) -> bool:
        return self.start == 0.0 and self.end == 1.0

    def observe(self, timestep: Any) -> None:
        """Record the timestep of the denoiser call about to run."""
        if timestep is None:
            return
        value = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        self.progress = 1.0 - value / self.num_train_timesteps

    def contains_current_step(self) -> bool:
        return self.whole or self.progress is None or self.start <= self.progress <= self.end


class PLADISAttnProcessor:
    """Cross-attention processor computing At_dense + λ·(At_α-entmax − At_dense) (Eq. 15).

    It reproduces the processor it replaces — ``AttnProcessor2_0`` for SD/SDXL UNets (spatial and
    group norm, per-head ``norm_q``/``norm_k``, residual, ``rescale_output_factor``, 4-D inputs, masks)
    and ``SanaAttnProcessor2_0`` for SANA (``norm_q``/``norm_k`` over the full inner dimension, before
    the head split) — telling them apart from the module's norms. Only the attention itself changes.

    ``scale`` (λ), ``alpha``, ``temperature`` and ``backend`` are checked once, as a
    :class:`pladis._checks.PLADISSettings` (``settings``, which ``apply`` passes ready-made, replaces them).
    ``window`` (a :class:`StepWindow`) restricts PLADIS to part of the denoising trajectory.
    ``backend`` picks the implementation ("auto", "eager", "compile", "triton", "native"; see
    :mod:`pladis.kernels.backends`). ``style`` forces the semantics ("sd" or "sana"); by default they are read off the module.
    With ``scale=0`` it runs the very same SDPA call as diffusers (bit-identical output). When given
    ``original`` (the processor it replaces) it delegates to it whenever PLADIS is inactive.
    """

    pladis_processor = True  # pladis.handle.is_pladis

    def __init__(
        self,
        scale: float = 2.0,
        alpha: float = 1.5,
        temperature: float = 1.0,
        *,
        original: Any | None = None,
        style: str | None = None,
        window: StepWindow | None = None,
        backend: str = "auto",
        settings: PLADISSettings | None = None,
    ) -> None:
        if style not in (None, "auto", "sd", "sana"):
            raise ValueError(f"style must be one of None, 'auto', 'sd', 'sana'; got {style!r}")
        if settings is not None and not isinstance(settings, PLADISSettings):
            raise TypeError(f"settings must be a PLADISSettings or None; got {type(settings).__name__}")
        self.settings = settings or PLADISSettings(scale, alpha, temperature, backend)
        self.style = None if style == "auto" else style
        self.original = original
        self.window = window
        self._original_params = _call_parameters(original) if original is not None else frozenset()

    @property
    def scale(self) -> float:
        return self.settings.scale

    @property
    def alpha(self) -> float:
        return self.settings.alpha

    @property
    def temperature(self) -> float:
        return self.settings.temperature

    @property
    def backend(self) -> str:
        return self.settings.backend

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self.scale}, alpha={self.alpha}, "
            f"temperature={self.temperature}, backend={self.backend!r})"
        )

    def is_active(self) -> bool:
        """Whether the PLADIS attention is used for the next call (λ ≠ 0, inside the step window)."""
        return self.scale != 0.0 and (self.window is None or self.window.contains_current_step())

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        active = self.is_active()
        if not active and self.original is not None:
            return self._delegate(attn, hidden_states, encoder_hidden_states, attention_mask, temb, kwargs)

        across_heads = norms_span_heads(attn) if self.style is None else self.style == "sana"
        return run_attention(
            attn,
            hidden_states,
            encoder_hidden_states,
            attention_mask,
            temb,
            attend=lambda q, k, v, mask: self.attend(q, k, v, mask, active),
            norms_across_heads=across_heads,
        )

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        active: bool,
    ) -> torch.Tensor:
        """The attention on (B, H, N, D) heads: Eq. 15 when active, else diffusers' exact SDPA call.

        Subclasses (e.g. attention-map recorders) override this one step.
        """
        if not active:
            return F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
            )
        # The settings were checked once (PLADISSettings) and diffusers shapes q, k, v: the public
        # pladis_attention's per-call checks would only repeat that work, thousands of times per image.
        bias = None
        if attention_mask is not None:
            bias = mask_to_bias(attention_mask, scores_shape(query, key), query.dtype)
        s = self.settings
        return backends.attention(query, key, value, bias, s.scale, s.alpha, s.temperature, s.backend)

    def _delegate(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        temb: torch.Tensor | None,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        extra = dict(kwargs)
        if temb is not None:
            extra["temb"] = temb
        if "**" not in self._original_params:
            extra = {name: val for name, val in extra.items() if name in self._original_params}
        return self.original(
            attn,
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            **extra,
        )


def _fraction(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1], else ``ValueError`` naming ``name``."""
    number = as_real(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"start and end must be fractions in [0, 1] of the denoising trajectory; got {name}={value!r}")
    return number


def run_attention(
    attn: Any,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    temb: torch.Tensor | None,
    *,
    attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    norms_across_heads: bool = False,
    transform_query: Callable[[torch.Tensor, tuple[int, int] | None], torch.Tensor] | None = None,
) -> torch.Tensor:
    """diffusers' ``AttnProcessor2_0`` body (spatial/group norm, 4-D inputs, masks, q/k norms, residual,
    rescale) with two steps left to the caller: ``attend(q, k, v, mask)`` on (B, H, N, D) heads and an
    optional ``transform_query(query, grid)`` right after ``to_q`` (grid = (h, w) for 4-D inputs).
    ``norms_across_heads`` applies ``norm_q``/``norm_k`` before the head split (``SanaAttnProcessor2_0``).
    """
    residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)

    input_ndim = hidden_states.ndim
    grid = None
    if input_ndim == 4:
        batch_size, channel, height, width = hidden_states.shape
        grid = (height, width)
        hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)

    batch_size, sequence_length, _ = (
        hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
    )
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

    query = attn.to_q(hidden_states)
    if transform_query is not None:
        query = transform_query(query, grid)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)

    if norms_across_heads:
        query, key = _apply_qk_norms(attn, query, key)

    inner_dim = key.shape[-1]
    head_dim = inner_dim // attn.heads
    query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

    if not norms_across_heads:
        query, key = _apply_qk_norms(attn, query, key)

    hidden_states = attend(query, key, value, attention_mask)

    hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
    hidden_states = hidden_states.to(query.dtype)
    hidden_states = attn.to_out[0](hidden_states)
    hidden_states = attn.to_out[1](hidden_states)

    if input_ndim == 4:
        hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
    if attn.residual_connection:
        hidden_states = hidden_states + residual
    return hidden_states / attn.rescale_output_factor


def norms_span_heads(attn: Any) -> bool:
    """True when the module's ``norm_q`` normalises the full inner dimension (SANA), not one head."""
    norm = getattr(attn, "norm_q", None)
    if norm is None or getattr(attn, "heads", 1) == 1:
        return False
    width = _normalized_width(norm)
    return width is not None and width == attn.to_q.out_features and width != attn.to_q.out_features // attn.heads


def _normalized_width(norm: torch.nn.Module) -> int | None:
    for attr in ("normalized_shape", "dim"):
        shape = getattr(norm, attr, None)
        if shape is not None:
            return int(tuple(shape)[-1]) if not isinstance(shape, int) else shape
    weight = getattr(norm, "weight", None)
    return int(weight.shape[-1]) if isinstance(weight, torch.Tensor) else None


def _apply_qk_norms(attn: Any, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key


def _call_parameters(processor: Any) -> frozenset[str]:
    """Names a processor's ``__call__`` accepts ("**" when it takes arbitrary keywords)."""
    params = inspect.signature(processor.__call__).parameters.values()
    names = {p.name for p in params}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        names.add("**")
    return frozenset(names)
