"""ONNX export of joint-attention transformers (FLUX.1, FLUX.2, SD3/3.5: one softmax over [text | image] tokens)
with PLADIS' mass-preserving sub-block rule (:mod:`pladis.joint`) and λ as a graph input.

The model keeps its own processors: PLADIS' SDPA interception (:mod:`pladis.intercept`) is installed as for
``pladis.apply`` but each intercepted product is :func:`joint_attention_export`, the same rule written with
explicit ops only (no fused kernel returning log-sum-exps, no in-place slice writes, no data-dependent
branch on λ), its text-block α-entmax the sort-free :func:`pladis_onnx.export_attention.entmax_fixed` of
the UNet exports. The TorchScript exporter has no symbolic for ``aten::rms_norm`` (FLUX's and SD3.5's
q/k norms): :func:`rms_norm_symbolic` registers one for the duration of an export only; and its tracer
loses dynamic sizes through ``unflatten`` (FLUX): :class:`UnflattenAsReshape` is active while tracing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .export_attention import entmax_fixed, mask_bias

__all__ = [
    "JOINT_INPUTS",
    "JOINT_KINDS",
    "JointWrapper",
    "UnflattenAsReshape",
    "export_intercept",
    "joint_attention_export",
    "joint_axes",
    "joint_dummy_inputs",
    "joint_kind",
    "rms_norm_symbolic",
]

#: Denoiser class → export kind; graph inputs per kind (``pladis_scale`` is appended unless λ is static).
JOINT_KINDS = {"FluxTransformer2DModel": "flux", "SD3Transformer2DModel": "sd3",
               "Flux2Transformer2DModel": "flux2"}
JOINT_INPUTS: dict[str, tuple[str, ...]] = {
    "flux": ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids",
             "guidance"),
    "flux-schnell": ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids",
                     "txt_ids"),
    "sd3": ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep"),
    "flux2": ("hidden_states", "encoder_hidden_states", "timestep", "img_ids", "txt_ids", "guidance"),
    "flux2-klein": ("hidden_states", "encoder_hidden_states", "timestep", "img_ids", "txt_ids"),
}


def joint_kind(denoiser: Any) -> str | None:
    """"flux" (FLUX.1-dev: a guidance embedding), "flux-schnell", "sd3", "flux2" (FLUX.2-dev: a guidance
    embedding), "flux2-klein", or None for other denoisers."""
    kind = JOINT_KINDS.get(type(denoiser).__name__)
    if kind in ("flux", "flux2") and not denoiser.config.get("guidance_embeds"):
        return {"flux": "flux-schnell", "flux2": "flux2-klein"}[kind]
    return kind


def joint_attention_export(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    text_length: int,
    token_order: str,
    scale: torch.Tensor | float,
    *,
    alpha: float = 1.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """:func:`pladis.joint.joint_attention` on (B, H, N, D) heads with explicit ops, for tracing.

    With P = softmax(S) over all N keys (S = QKᵀ/√D + mask, float32) and, for the image-query × text-key
    block, Z = S[img, txt], m = Σ_txt P[img, txt] and E = α-entmax(Z / T)::

        out = P·V + λ · [0 ; (m·E − P[img, txt]) · V_txt]     (text rows: 0; image rows: the correction)

    which is the joint rule (w[img, txt] = m·((1−λ)·softmax(Z) + λ·E), since P[img, txt] = m·softmax(Z)),
    and exactly P·V at λ = 0. The text span is the first (``"text_first"``) or last ``text_length`` keys;
    the number of image tokens stays dynamic in the graph. Fully masked rows give zeros, not NaN.
    """
    image_first = token_order == "image_first"
    scores = torch.matmul(query * (1.0 / math.sqrt(query.shape[-1])), key.transpose(-2, -1)).float()
    if attn_mask is not None:
        bias = mask_bias(attn_mask)
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    if attn_mask is not None:
        probs = torch.where(torch.isnan(probs), torch.zeros_like(probs), probs)
    out = torch.matmul(probs.to(value.dtype), value)
    if not isinstance(scale, torch.Tensor) and scale == 0.0:
        return out
    if image_first:  # rows/keys [image | text]
        img_rows, txt_keys = slice(None, -text_length), slice(-text_length, None)
    else:
        img_rows, txt_keys = slice(text_length, None), slice(None, text_length)
    block = scores[..., img_rows, txt_keys]
    dense_block = probs[..., img_rows, txt_keys]
    mass = dense_block.sum(-1, keepdim=True)
    sparse = entmax_fixed(block if temperature == 1.0 else block / temperature, alpha)
    lam = scale.float().reshape(()) if isinstance(scale, torch.Tensor) else float(scale)
    correction = torch.matmul(((mass * sparse - dense_block) * lam).to(value.dtype), value[..., txt_keys, :])
    zeros = torch.zeros_like(out[..., txt_keys, :]) if image_first else torch.zeros_like(out[..., :text_length, :])
    pieces = (correction, zeros) if image_first else (zeros, correction)
    return out + torch.cat(pieces, dim=-2)


@contextlib.contextmanager
def rms_norm_symbolic(opset: int) -> Iterator[None]:
    """Give the TorchScript exporter a symbolic for ``aten::rms_norm`` while the block runs (removed after;
    a symbolic registered by someone else beforehand is left alone).

    y = x / √(mean(x², normalised dims) + ε) · weight, as ``torch.nn.functional.rms_norm``: ε defaults to
    the input dtype's machine epsilon; fp16 / bf16 inputs are normalised in fp32 and cast back.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic
    from torch.onnx._internal.torchscript_exporter import registration
    from torch.onnx._internal.torchscript_exporter import symbolic_helper as sym

    name = "aten::rms_norm"
    if registration.registry.is_registered_op(name, opset):
        yield
        return
    finfo = {"Half": torch.float16, "BFloat16": torch.bfloat16, "Double": torch.float64}

    @sym.parse_args("v", "is", "v", "f")
    def rms_norm(g, x, normalized_shape, weight, eps):
        dims = list(range(-len(normalized_shape), 0))
        dtype = x.type().scalarType() or "Float"
        work_dtype = torch.float64 if dtype == "Double" else torch.float32
        work = x if dtype in ("Float", "Double") else g.op("Cast", x, to_i=sym.cast_pytorch_to_onnx["Float"])
        square = g.op("Mul", work, work)
        if opset >= 18:  # axes became an input of ReduceMean
            axes = g.op("Constant", value_t=torch.tensor(dims, dtype=torch.int64))
            mean = g.op("ReduceMean", square, axes, keepdims_i=1)
        else:
            mean = g.op("ReduceMean", square, axes_i=dims, keepdims_i=1)
        value = torch.finfo(finfo.get(dtype, torch.float32)).eps if eps is None else eps
        epsilon = g.op("Constant", value_t=torch.tensor(value, dtype=work_dtype))
        normed = g.op("Div", work, g.op("Sqrt", g.op("Add", mean, epsilon)))
        if dtype not in ("Float", "Double"):
            normed = g.op("Cast", normed, to_i=sym.cast_pytorch_to_onnx[dtype])
        return normed if sym._is_none(weight) else g.op("Mul", normed, weight)

    register_custom_op_symbolic(name, rms_norm, opset)
    try:
        yield
    finally:
        unregister_custom_op_symbolic(name, opset)


def _export_class(wrapper_class: type) -> type:
    """A subclass of an intercept wrapper class (``pladis.intercept._wrapper_class``: it keeps the family
    processor's ``__call__`` signature) whose joint product is :func:`joint_attention_export` with λ read
    from ``state["scale"]`` at call time (the graph input while tracing)."""

    def attend_joint(self, query, key, value, attn_mask, text):
        start, stop = text
        return joint_attention_export(
            query, key, value, attn_mask, stop - start, self.config.token_order, self.state["scale"],
            alpha=self.alpha, temperature=self.temperature,
        )

    def is_active(self):
        return True  # λ is decided by the graph input, not at trace time

    return type(f"Export{wrapper_class.__name__}", (wrapper_class,),
                {"attend_joint": attend_joint, "is_active": is_active})


@contextlib.contextmanager
def export_intercept(denoiser: Any, adapter: Any, state: dict[str, Any], alpha: float,
                     temperature: float) -> Iterator[int]:
    """Install PLADIS' SDPA interception on the adapter's joint-attention modules with the export product
    (λ from ``state["scale"]``); everything is put back on exit. Yields the number of modules."""
    from pladis.handle import unwrap
    from pladis.intercept import TextContext, _wrapper_class, attention_modules, intercept_config

    config = intercept_config(adapter)
    if config.kind != "joint":
        raise ValueError(f"adapter {adapter.name!r} declares {config.kind!r} attention; only joint attention exports")
    modules = attention_modules(denoiser, adapter)
    if not modules:
        raise ValueError(f"{type(denoiser).__name__} has no attention module matching adapter {adapter.name!r}")
    context = TextContext(denoiser, config, None)
    hook = denoiser.register_forward_pre_hook(context.observe, with_kwargs=True)
    originals = {name: module.processor for name, module in modules.items()}
    try:
        for name, module in modules.items():
            plain = unwrap(originals[name])
            proc = _export_class(_wrapper_class(type(plain)))(plain, config, context, 2.0, alpha, temperature,
                                                              "eager")
            proc.state = state
            module.set_processor(proc)
        yield len(modules)
    finally:
        hook.remove()
        for name, module in modules.items():
            module.set_processor(originals[name])


def joint_dummy_inputs(denoiser: Any, kind: str, dtype: torch.dtype, batch: int | None = None,
                       side: int | None = None, text_length: int = 16) -> tuple[torch.Tensor, ...]:
    """Example inputs of the ``kind`` transformer in :data:`JOINT_INPUTS` order: ``text_length`` text
    tokens; SD3 latents ``side`` × ``side`` (default: the config's sample size), batch 2 (CFG); FLUX.1 /
    FLUX.2 ``side`` × ``side`` packed latent tokens (default 8: the tiny pipelines' 32 px), batch 1."""
    batch = batch or (2 if kind == "sd3" else 1)
    config = denoiser.config
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(batch, text_length, config.joint_attention_dim, generator=gen).to(dtype)
    pooled = torch.randn(batch, config.get("pooled_projection_dim") or 1, generator=gen).to(dtype)
    if kind == "sd3":
        side = side or int(config.sample_size)
        sample = torch.randn(batch, config.in_channels, side, side, generator=gen).to(dtype)
        return sample, text, pooled, torch.full((batch,), 500.0)
    side = side or 8  # packed latents: side × side tokens of in_channels
    tokens = torch.randn(batch, side * side, config.in_channels, generator=gen).to(dtype)
    guidance = (torch.full((batch,), 3.5),) if kind in ("flux", "flux2") else ()
    timestep = torch.full((batch,), 0.5)
    if kind.startswith("flux2"):  # FLUX.2 ids are per sample, (t, h, w, l): image (0, h, w, 0), text (0, 0, 0, l)
        img_ids = torch.zeros(batch, side, side, 4)
        img_ids[..., 1], img_ids[..., 2] = torch.arange(side)[:, None], torch.arange(side)[None, :]
        txt_ids = torch.zeros(batch, text_length, 4)
        txt_ids[..., 3] = torch.arange(text_length)
        return tokens, text, timestep, img_ids.reshape(batch, side * side, 4), txt_ids, *guidance
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1], img_ids[..., 2] = torch.arange(side)[:, None], torch.arange(side)[None, :]
    return tokens, text, pooled, timestep, img_ids.reshape(side * side, 3), torch.zeros(text_length, 3), *guidance


class JointWrapper(torch.nn.Module):
    """``(*JOINT_INPUTS[kind], [pladis_scale]) -> noise_pred`` for one joint-attention transformer; λ goes
    to the export processors via ``state``."""

    def __init__(self, denoiser: Any, kind: str, state: dict[str, Any], static_scale: float | None) -> None:
        super().__init__()
        self.denoiser, self.kind, self.state, self.static_scale = denoiser, kind, state, static_scale

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = JOINT_INPUTS[self.kind]
        self.state["scale"] = inputs[len(names)] if self.static_scale is None else float(self.static_scale)
        return self.denoiser(**dict(zip(names, inputs, strict=False)), return_dict=False)[0]


def joint_axes(kind: str) -> dict[str, dict[int, str]]:
    """Dynamic axes: batch and image size (SD3: latent height/width; FLUX: the packed image tokens and
    ``img_ids``). The text length is fixed at export (the joint rule's text span is a constant of the
    graph; the pipelines pad every prompt to ``max_sequence_length``), and so are FLUX's ``txt_ids``."""
    axes = {name: {0: "batch"} for name in JOINT_INPUTS[kind] if name not in ("img_ids", "txt_ids")}
    if kind == "sd3":
        axes["hidden_states"] = {0: "batch", 2: "height", 3: "width"}
        axes["noise_pred"] = {0: "batch", 2: "height", 3: "width"}
    else:
        axes["hidden_states"] = {0: "batch", 1: "image_tokens"}
        axes["noise_pred"] = {0: "batch", 1: "image_tokens"}
        if kind.startswith("flux2"):  # per-sample ids
            axes["img_ids"], axes["txt_ids"] = {0: "batch", 1: "image_tokens"}, {0: "batch"}
        else:
            axes["img_ids"] = {0: "image_tokens"}
    return axes


class UnflattenAsReshape(TorchFunctionMode):
    """``Tensor.unflatten`` as the equivalent ``reshape`` while tracing.

    The TorchScript tracer does not carry dynamic sizes through ``aten::unflatten``: the sizes of its
    output are recorded as constants, so a later ``x.reshape(*x.shape[:-1], -1, 2)`` (diffusers'
    ``apply_rotary_emb`` after FLUX's ``unflatten(-1, (-1, head_dim))``) would fix batch and token count in
    the graph. A reshape built from the input's traced sizes keeps them dynamic; the values are the same.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.unflatten, torch.unflatten) and len(args) + len(kwargs) == 3:
            bound = dict(zip(("input", "dim", "sizes"), args, strict=False)) | kwargs
            x, dim = bound["input"], bound["dim"] % bound["input"].dim()
            return x.reshape(*x.shape[:dim], *bound["sizes"], *x.shape[dim + 1:])
        return func(*args, **kwargs)
