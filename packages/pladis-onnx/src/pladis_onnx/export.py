"""Export a text-to-image pipeline to ONNX with PLADIS (Eq. 15) inside the denoiser's cross-attention.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``). The dynamo exporter
needs ``onnxscript`` (not a dependency of this repo) and its ``torch.export`` capture of diffusers
UNets/transformers with dynamic batch *and* resolution is brittle; TorchScript tracing of these models
is the path diffusers/optimum have used for years. ``optimum-onnx`` is not used: it pins
transformers < 4.58, and this repo runs transformers 5.x.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .export_joint import (
    JOINT_INPUTS,
    JointWrapper,
    UnflattenAsReshape,
    export_intercept,
    joint_axes,
    joint_dummy_inputs,
    joint_kind,
    rms_norm_symbolic,
)
from .wrappers import (
    DENOISER_INPUTS,
    DenoiserWrapper,
    TextEncoderWrapper,
    VaeDecoderWrapper,
    denoiser_kind,
    export_processors,
)

__all__ = ["FORMAT_VERSION", "MAX_OPSET", "MIN_OPSET", "METADATA_FILE", "export_denoiser", "export_pipeline"]

#: Opset 14 is the first with the ops the traced attention needs (SDPA of the untouched
#: self-attention, Trilu-free masks); 20 is the TorchScript exporter's newest.
MIN_OPSET = 14
MAX_OPSET = 20
METADATA_FILE = "pladis_onnx.json"
FORMAT_VERSION = 1
_FORBIDDEN_OPS = ("TopK", "CumSum")


def check_opset(opset: int) -> int:
    """Return ``opset`` if the exporter and the PLADIS graph support it, else raise ``ValueError``."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ValueError(f"opset must be an integer; got {opset!r}")
    if opset < MIN_OPSET:
        raise ValueError(
            f"opset {opset} is too old: the exported PLADIS denoiser needs opset >= {MIN_OPSET} "
            "(scaled_dot_product_attention and the reduce ops of the sort-free α-entmax)"
        )
    if opset > MAX_OPSET:
        raise ValueError(f"opset {opset} is newer than the TorchScript ONNX exporter supports (max {MAX_OPSET})")
    return opset


def _check_alpha(alpha: float) -> float:
    value = float(alpha)
    if not 1.0 < value <= 2.0:
        raise ValueError(f"alpha must be in (1, 2] for export (1.5 = entmax15, 2 = sparsemax); got {alpha!r}")
    return value


def _onnx_export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                 axes: dict[str, dict[int, str]], opset: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
        )
    _fix_negative_perms(path)
    return path


def _fix_negative_perms(path: Path) -> None:
    """TorchScript exports ``permute``/``movedim`` with negative dims (e.g. DC-AE's attention) as Transpose
    perms like {0, -1, 1, 2}, which ONNX Runtime rejects; rewrite them as non-negative axes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    changed = False
    for node in model.graph.node:
        if node.op_type != "Transpose":
            continue
        for attr in node.attribute:
            if attr.name == "perm" and any(p < 0 for p in attr.ints):
                rank = len(attr.ints)
                fixed = [p + rank if p < 0 else p for p in attr.ints]
                del attr.ints[:]
                attr.ints.extend(fixed)
                changed = True
    if changed:
        onnx.save(model, str(path))


def _dummy_denoiser_inputs(denoiser: Any, kind: str, dtype: torch.dtype, batch: int = 2,
                           size: int | None = None, seq: int | None = None) -> tuple[torch.Tensor, ...]:
    config = denoiser.config
    side = size or int(config.sample_size if isinstance(config.sample_size, int) else config.sample_size[0])
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, config.in_channels, side, side, generator=gen).to(dtype)
    timestep = torch.full((batch,), 500.0)
    if kind == "sana":
        seq = seq or 8
        text = torch.randn(batch, seq, config.caption_channels, generator=gen).to(dtype)
        mask = torch.ones(batch, seq, dtype=torch.int64)
        mask[:, seq // 2:] = 0
        return sample, timestep, text, mask
    width = config.cross_attention_dim
    text = torch.randn(batch, seq or 77, width, generator=gen).to(dtype)
    if kind == "sd":
        return sample, timestep, text
    pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    text_embeds = torch.randn(batch, pooled, generator=gen).to(dtype)
    time_ids = torch.tensor([[side * 8.0, side * 8.0, 0.0, 0.0, side * 8.0, side * 8.0]] * batch).to(dtype)
    return sample, timestep, text, text_embeds, time_ids


def export_denoiser(denoiser: Any, path: str | os.PathLike, *, pladis: bool = True, alpha: float = 1.5,
                    temperature: float = 1.0, static_scale: float | None = None, opset: int = 17,
                    style: str | None = None, sample_size: int | None = None, backbone: str | None = None,
                    text_length: int = 16) -> Path:
    """Export one denoiser (UNet / SANA transformer / joint-attention transformer) to ``path``.

    With ``pladis`` every cross-attention computes Eq. 15 with the sort-free α-entmax; λ is the float32
    graph input ``pladis_scale`` (shape [1]) unless ``static_scale`` bakes it in. ``pladis=False`` exports
    the dense model unchanged (the benchmark's baseline). Batch, latent height/width and text length are
    dynamic axes. The model's dtype (fp32 / fp16) is kept; the entmax threshold is always solved in fp32.

    Joint-attention transformers (FLUX.1, SD3/3.5: :mod:`pladis_onnx.export_joint`) get PLADIS' joint rule
    in the modules of their adapter (``backbone``, default: detected); their text length is fixed at
    ``text_length`` tokens (the pipeline's ``max_sequence_length``, plus 77 CLIP tokens for SD3), the batch
    and image size stay dynamic.
    """
    check_opset(opset)
    alpha = _check_alpha(alpha)
    if joint_kind(denoiser) is not None:
        return _export_joint(denoiser, Path(path), pladis=pladis, alpha=alpha, temperature=temperature,
                             static_scale=static_scale, opset=opset, side=sample_size, backbone=backbone,
                             text_length=text_length)
    kind = denoiser_kind(denoiser)
    dtype = next(denoiser.parameters()).dtype
    args = _dummy_denoiser_inputs(denoiser, kind, dtype, size=sample_size)
    inputs = list(DENOISER_INPUTS[kind])
    state: dict[str, Any] = {"scale": 0.0}
    lam_input = pladis and static_scale is None
    if lam_input:
        args = (*args, torch.tensor([2.0]))
        inputs.append("pladis_scale")
    axes: dict[str, dict[int, str]] = {
        "sample": {0: "batch", 2: "height", 3: "width"},
        "timestep": {0: "batch"},
        "encoder_hidden_states": {0: "batch", 1: "sequence"},
        "noise_pred": {0: "batch", 2: "height", 3: "width"},
    }
    axes.update({name: {0: "batch"} for name in ("text_embeds", "time_ids")})
    axes["encoder_attention_mask"] = {0: "batch", 1: "sequence"}
    axes = {k: v for k, v in axes.items() if k in inputs or k == "noise_pred"}
    wrapper = DenoiserWrapper(denoiser, kind, state, None if lam_input else float(static_scale or 0.0)).eval()
    path = Path(path)
    if pladis:
        with export_processors(denoiser, state, alpha, temperature, style):
            _onnx_export(wrapper, args, path, inputs, ["noise_pred"], axes, opset)
        _check_no_sort(path)
    else:
        _onnx_export(wrapper, args, path, inputs, ["noise_pred"], axes, opset)
    return path


def _export_joint(denoiser: Any, path: Path, *, pladis: bool, alpha: float, temperature: float,
                  static_scale: float | None, opset: int, side: int | None, backbone: str | None,
                  text_length: int) -> Path:
    from pladis.adapters import resolve_adapter

    kind = joint_kind(denoiser)
    dtype = next(denoiser.parameters()).dtype
    args = joint_dummy_inputs(denoiser, kind, dtype, side=side, text_length=text_length)
    inputs = list(JOINT_INPUTS[kind])
    state: dict[str, Any] = {"scale": 0.0}
    lam_input = pladis and static_scale is None
    if lam_input:
        args = (*args, torch.tensor([2.0]))
        inputs.append("pladis_scale")
    axes = joint_axes(kind)
    wrapper = JointWrapper(denoiser, kind, state, None if lam_input else float(static_scale or 0.0)).eval()
    with rms_norm_symbolic(opset), UnflattenAsReshape():
        if pladis:
            with export_intercept(denoiser, resolve_adapter(denoiser, denoiser, backbone), state, alpha, temperature):
                _onnx_export(wrapper, args, path, inputs, ["noise_pred"], axes, opset)
            _check_no_sort(path)
        else:
            _onnx_export(wrapper, args, path, inputs, ["noise_pred"], axes, opset)
    return path


def _check_no_sort(path: Path) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    bad = sorted(ops.intersection(_FORBIDDEN_OPS))
    if bad:
        raise RuntimeError(f"exported PLADIS graph {path} contains sort-based ops {bad}; this is a bug")


def _load(model: str | os.PathLike, backbone: str | None) -> Any:
    from pladis.adapters import default_registry

    if backbone is not None:
        spec = default_registry().get(backbone).spec
        if spec.load is None:
            raise ValueError(f"backbone {backbone!r} has no loader; pass a pipeline object instead")
        return spec.load(str(model))
    import diffusers

    pipe = diffusers.DiffusionPipeline.from_pretrained(str(model))
    pipe._pladis_model_id = str(model)
    return pipe


def export_pipeline(pipe_or_model_dir: Any, out_dir: str | os.PathLike, *, backbone: str | None = None,
                    opset: int = 17, fp16: bool = False, alpha: float = 1.5, temperature: float = 1.0,
                    static_scale: float | None = None, max_sequence_length: int | None = None) -> Path:
    """Export every component a text-to-image run needs into ``out_dir``; return ``out_dir``.

    Joint-attention pipelines (FLUX.1, FLUX.2, SD3/3.5) are the exception: only ``denoiser.onnx`` (the
    transformer with PLADIS' joint rule, λ = input ``pladis_scale``) and ``pladis_onnx.json`` are written,
    for ``max_sequence_length`` text-encoder tokens (default: the pipeline's own default); there is no ONNX
    Runtime pipeline for them (:class:`OnnxPipeline` says so), and ``fp16`` is refused.

    Writes ``denoiser.onnx`` (PLADIS in every cross-attention, Eq. 15; λ = input ``pladis_scale`` unless
    ``static_scale``), ``text_encoder.onnx`` (+ ``text_encoder_2.onnx`` for SDXL), ``vae_decoder.onnx``,
    the tokenizer(s), the scheduler config and ``pladis_onnx.json`` (what :class:`OnnxPipeline` needs).
    ``pipe_or_model_dir`` is a diffusers pipeline or a hub id / folder (loaded with the ``backbone``
    adapter's loader, else ``DiffusionPipeline.from_pretrained``). ``fp16`` exports the denoiser and text
    encoders in float16 (the VAE stays fp32 when its config asks for ``force_upcast``), else everything is
    exported in float32, whatever the pipeline's dtype; the pipeline gets its dtypes back afterwards.
    """
    from pladis.adapters import find_denoiser, resolve_adapter

    check_opset(opset)
    alpha = _check_alpha(alpha)
    if static_scale is not None and not torch.isfinite(torch.tensor(float(static_scale))):
        raise ValueError(f"static_scale must be finite; got {static_scale!r}")
    pipe = pipe_or_model_dir
    if isinstance(pipe, (str, os.PathLike)):
        pipe = _load(pipe, backbone)
    denoiser = find_denoiser(pipe)
    if joint_kind(denoiser) is not None:
        return _export_joint_pipeline(pipe, denoiser, Path(out_dir), backbone=backbone, opset=opset, fp16=fp16,
                                      alpha=alpha, temperature=temperature, static_scale=static_scale,
                                      max_sequence_length=max_sequence_length)
    kind = denoiser_kind(denoiser)
    spec = resolve_adapter(pipe, denoiser, backbone)
    style = None if spec.attention_style == "auto" else spec.attention_style
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = {name: getattr(pipe, name) for name in ("unet", "transformer", "text_encoder", "text_encoder_2",
                                                      "vae") if getattr(pipe, name, None) is not None}
    dtypes = {name: next(module.parameters()).dtype for name, module in modules.items()}
    try:  # export in the dtype asked for (fp16 or fp32), whatever the pipeline's; put its own back after
        for name, module in modules.items():
            upcast = name == "vae" and getattr(module.config, "force_upcast", False)
            target = torch.float16 if fp16 and not upcast else torch.float32
            if dtypes[name] != target:  # (diffusers' .to() warns on every call)
                module.to(target)
        export_denoiser(denoiser.eval(), out / "denoiser.onnx", alpha=alpha, temperature=temperature,
                        static_scale=static_scale, opset=opset, style=style)
        with _eager_text_attention(pipe) if fp16 else contextlib.nullcontext():
            _export_text_encoders(pipe, kind, out, opset)
        _export_vae(pipe, kind, out, opset)
    finally:
        for name, module in modules.items():
            if next(module.parameters()).dtype != dtypes[name]:
                module.to(dtypes[name])
    for name in ("tokenizer", "tokenizer_2"):
        if getattr(pipe, name, None) is not None:
            getattr(pipe, name).save_pretrained(out / name)
    pipe.scheduler.save_pretrained(out / "scheduler")
    meta = _metadata(pipe, denoiser, kind, spec.name, alpha, temperature, static_scale, opset, fp16)
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return out


def _export_joint_pipeline(pipe: Any, denoiser: Any, out: Path, *, backbone: str | None, opset: int, fp16: bool,
                           alpha: float, temperature: float, static_scale: float | None,
                           max_sequence_length: int | None) -> Path:
    """``denoiser.onnx`` + ``pladis_onnx.json`` of a joint-attention pipeline (see :func:`export_pipeline`)."""
    import inspect

    from pladis.adapters import resolve_adapter

    kind = joint_kind(denoiser)
    if fp16:
        raise ValueError(f"fp16 export of the joint-attention {type(denoiser).__name__} is not supported; "
                         "export it in float32")
    spec = resolve_adapter(pipe, denoiser, backbone)
    if max_sequence_length is None:
        parameter = inspect.signature(type(pipe).__call__).parameters.get("max_sequence_length")
        if parameter is None or not isinstance(parameter.default, int):
            raise ValueError(f"{type(pipe).__name__} has no default max_sequence_length; pass max_sequence_length")
        max_sequence_length = parameter.default
    # SD3 joins 77 CLIP tokens to the T5 ones; FLUX.1 / FLUX.2 attend over the T5 / Qwen3 tokens alone
    text_length = max_sequence_length + (77 if kind == "sd3" else 0)
    dtype = next(denoiser.parameters()).dtype
    if dtype != torch.float32:
        denoiser.to(torch.float32)
    try:
        export_denoiser(denoiser.eval(), out / "denoiser.onnx", alpha=alpha, temperature=temperature,
                        static_scale=static_scale, opset=opset, backbone=spec.name, text_length=text_length)
    finally:
        if dtype != torch.float32:
            denoiser.to(dtype)
    meta = {
        "format_version": FORMAT_VERSION, "kind": kind, "backbone": spec.name,
        "pipeline_class": type(pipe).__name__, "components": ["denoiser"], "alpha": alpha,
        "temperature": temperature, "static_scale": None if static_scale is None else float(static_scale),
        "opset": opset, "fp16": False, "max_sequence_length": max_sequence_length, "text_length": text_length,
        "inputs": list(JOINT_INPUTS[kind]) + ([] if static_scale is not None else ["pladis_scale"]),
        "preset": getattr(pipe, "_pladis_preset", None),
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return out


@contextlib.contextmanager
def _eager_text_attention(pipe: Any) -> Any:
    """Trace the text encoders with eager attention (restored on exit).

    The TorchScript symbolic of ``scaled_dot_product_attention`` turns a boolean mask (the CLIP causal
    mask, Gemma's padding mask) into a float32 additive mask, so an fp16 encoder traced with SDPA gets
    float32/float16 type clashes that ONNX Runtime refuses to load. Eager attention adds a mask of the
    model's dtype and softmaxes in fp32 explicitly, which exports cleanly in fp16.
    """
    changed = []
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        config = getattr(encoder, "config", None)
        current = getattr(config, "_attn_implementation", None)
        if hasattr(encoder, "set_attn_implementation") and current not in (None, "eager"):
            encoder.set_attn_implementation("eager")
            changed.append((encoder, current))
    try:
        yield
    finally:
        for encoder, current in changed:
            encoder.set_attn_implementation(current)


def _export_text_encoders(pipe: Any, kind: str, out: Path, opset: int) -> None:
    if kind == "sana":
        ids = torch.ones(2, 8, dtype=torch.int64)
        mask = torch.ones(2, 8, dtype=torch.int64)
        mask[1, 4:] = 0
        _onnx_export(TextEncoderWrapper(pipe.text_encoder, "masked").eval(), (ids, mask),
                     out / "text_encoder.onnx", ["input_ids", "attention_mask"], ["hidden_states"],
                     {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                      "hidden_states": {0: "batch", 1: "sequence"}}, opset)
        return
    encoders = [("text_encoder", "last" if kind == "sd" else "penultimate")]
    if kind == "sdxl":
        encoders.append(("text_encoder_2", "penultimate+pooled"))
    for name, mode in encoders:
        encoder = getattr(pipe, name, None)
        if encoder is None:
            raise ValueError(f"the pipeline has no {name}; it is needed for the ONNX export")
        length = getattr(pipe.tokenizer, "model_max_length", 77)
        ids = torch.ones(2, length, dtype=torch.int64)
        outputs = ["hidden_states", "pooled"] if mode == "penultimate+pooled" else ["hidden_states"]
        axes = {"input_ids": {0: "batch"}, "hidden_states": {0: "batch"}, "pooled": {0: "batch"}}
        _onnx_export(TextEncoderWrapper(encoder, mode).eval(), (ids,), out / f"{name}.onnx", ["input_ids"],
                     outputs, {k: v for k, v in axes.items() if k in outputs or k == "input_ids"}, opset)


def _export_vae(pipe: Any, kind: str, out: Path, opset: int) -> None:
    vae = getattr(pipe, "vae", None)
    if vae is None:
        raise ValueError("the pipeline has no vae; the VAE decoder is needed for the ONNX export")
    channels = vae.config.latent_channels
    dtype = next(vae.parameters()).dtype
    latents = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    axes = {"latents": {0: "batch", 2: "height", 3: "width"}, "image": {0: "batch", 2: "img_height", 3: "img_width"}}
    _onnx_export(VaeDecoderWrapper(vae).eval(), (latents,), out / "vae_decoder.onnx", ["latents"], ["image"],
                 axes, opset)


def _metadata(pipe: Any, denoiser: Any, kind: str, backbone: str, alpha: float, temperature: float,
              static_scale: float | None, opset: int, fp16: bool) -> dict[str, Any]:
    config = denoiser.config
    vae = pipe.vae.config
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "backbone": backbone,
        "pipeline_class": type(pipe).__name__,
        "alpha": alpha,
        "temperature": temperature,
        "static_scale": None if static_scale is None else float(static_scale),
        "opset": opset,
        "fp16": fp16,
        "vae_scale_factor": int(pipe.vae_scale_factor),
        "vae_scaling_factor": float(vae.scaling_factor),
        "latents_mean": getattr(vae, "latents_mean", None),
        "latents_std": getattr(vae, "latents_std", None),
        "latent_channels": int(config.in_channels),
        "out_channels": int(config.out_channels),
        "default_sample_size": int(getattr(pipe, "default_sample_size", None) or config.sample_size),
        "scheduler_class": type(pipe.scheduler).__name__,
        "preset": getattr(pipe, "_pladis_preset", None),
    }
    if kind == "sdxl":
        meta["force_zeros_for_empty_prompt"] = bool(pipe.config.get("force_zeros_for_empty_prompt", True))
        meta["text_encoder_projection_dim"] = int(pipe.text_encoder_2.config.projection_dim)
    if kind == "sana":
        meta["timestep_scale"] = float(config.get("timestep_scale", 1.0))
    return meta
