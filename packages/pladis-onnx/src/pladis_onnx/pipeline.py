"""Text-to-image with ONNX Runtime on the files written by :func:`pladis_onnx.export_pipeline`.

The loop mirrors the diffusers pipelines step for step (tokenisation, CFG, the adapter preset's
scheduler, initial latents from ``randn_tensor`` with the caller's seed, VAE decode and diffusers'
``VaeImageProcessor`` post-processing), so an ORT run reproduces the PyTorch PLADIS run (Eq. 15).
Only the networks run in ONNX Runtime; the scheduler arithmetic stays in (CPU) torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .export import METADATA_FILE

__all__ = ["OnnxPipeline", "OnnxPipelineOutput", "resolve_providers"]

_COMPONENTS = {"sd": ("text_encoder",), "sdxl": ("text_encoder", "text_encoder_2"), "sana": ("text_encoder",)}


def resolve_providers(provider: str = "auto") -> list[str]:
    """ORT providers for "auto" (CUDA when available, else CPU), "cpu" or "cuda"; clear error if missing."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else [
            "CPUExecutionProvider"]
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                "provider 'cuda' requested but onnxruntime has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu (pip install 'pladis-onnx[gpu]')"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"provider must be 'auto', 'cpu' or 'cuda'; got {provider!r}")


@dataclass
class OnnxPipelineOutput:
    """``images`` as diffusers returns them (list of PIL images, or an np array NHWC in [0, 1])."""

    images: Any
    provider: str


class OnnxPipeline:
    """ONNX Runtime text-to-image pipeline over an export directory (see :meth:`from_dir`)."""

    def __init__(self, directory: Path, meta: dict[str, Any], sessions: dict[str, Any], tokenizers: list[Any],
                 scheduler_config: dict[str, Any]) -> None:
        self.directory, self.meta, self.sessions = directory, meta, sessions
        self.tokenizers, self.scheduler_config = tokenizers, scheduler_config

    @classmethod
    def from_dir(cls, directory: str | os.PathLike, provider: str = "auto",
                 session_options: Any = None) -> OnnxPipeline:
        """Open an export directory; ``provider`` is "auto", "cpu" or "cuda"."""
        import onnxruntime as ort
        from transformers import AutoTokenizer

        directory = Path(directory)
        meta_path = directory / METADATA_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} is not a pladis-onnx export: {METADATA_FILE} is missing")
        meta = json.loads(meta_path.read_text())
        kind = meta["kind"]
        if kind not in _COMPONENTS:
            raise RuntimeError(
                f"{directory} holds only the {kind} transformer (denoiser.onnx with inputs "
                f"{', '.join(meta.get('inputs') or [])}): the ONNX Runtime pipeline runs SD1.x/2.x, SDXL and SANA "
                "exports; run this transformer with onnxruntime directly"
            )
        names = ("denoiser", *_COMPONENTS[kind], "vae_decoder")
        tok_names = ["tokenizer"] + (["tokenizer_2"] if kind == "sdxl" else [])
        missing = [f"{n}.onnx" for n in names if not (directory / f"{n}.onnx").is_file()]
        missing += [n + "/" for n in (*tok_names, "scheduler") if not (directory / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"export directory {directory} is missing component(s): {', '.join(missing)}")
        providers = resolve_providers(provider)
        if session_options is None:  # warnings only (e.g. fp16 nodes ORT cannot constant-fold) stay quiet
            session_options = ort.SessionOptions()
            session_options.log_severity_level = 3
        sessions = {n: ort.InferenceSession(str(directory / f"{n}.onnx"), sess_options=session_options,
                                            providers=providers) for n in names}
        tokenizers = [AutoTokenizer.from_pretrained(directory / n) for n in tok_names]
        scheduler_config = json.loads((directory / "scheduler" / "scheduler_config.json").read_text())
        return cls(directory, meta, sessions, tokenizers, scheduler_config)

    @property
    def provider(self) -> str:
        """The execution provider that runs the denoiser (first of the session's providers)."""
        return self.sessions["denoiser"].get_providers()[0]

    @property
    def has_scale_input(self) -> bool:
        return any(i.name == "pladis_scale" for i in self.sessions["denoiser"].get_inputs())

    def make_scheduler(self, preset: str | None = None) -> Any:
        """The adapter preset's scheduler built from the exported scheduler config."""
        import diffusers

        from pladis.adapters import default_registry

        spec = default_registry().get(self.meta["backbone"]).spec
        base = getattr(diffusers, self.meta["scheduler_class"])
        config = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
        return spec.preset(self.resolve_preset(preset)).make_scheduler(config, base)

    def resolve_preset(self, preset: str | None = None) -> str | None:
        """``preset``, else the preset the exported pipeline was loaded with (if any), else the adapter's."""
        return preset if preset is not None else self.meta.get("preset")

    def preset_kwargs(self, preset: str | None = None) -> dict[str, Any]:
        from pladis.adapters import default_registry

        return default_registry().get(self.meta["backbone"]).spec.preset(self.resolve_preset(preset)).call_kwargs()

    # -- running ---------------------------------------------------------------------------------
    def _run(self, name: str, **feeds: Any) -> list[np.ndarray]:
        session = self.sessions[name]
        typed = {}
        for info in session.get_inputs():
            value = np.asarray(feeds[info.name])
            want = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                    "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(info.type, value.dtype)
            typed[info.name] = value.astype(want, copy=False)
        return [np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for o in session.run(None, typed)]

    def denoise(self, sample: np.ndarray, timestep: np.ndarray, encoder_hidden_states: np.ndarray, *,
                scale: float = 2.0, **extra: np.ndarray) -> np.ndarray:
        """One denoiser call; ``extra`` holds ``text_embeds``/``time_ids`` (SDXL) or the SANA mask."""
        feeds = dict(sample=sample, timestep=timestep, encoder_hidden_states=encoder_hidden_states, **extra)
        if self.has_scale_input:
            feeds["pladis_scale"] = np.array([scale], dtype=np.float32)
        elif float(scale) != float(self.meta.get("static_scale") or 0.0):
            raise ValueError(f"this export has λ baked in ({self.meta['static_scale']}); got scale={scale}")
        return self._run("denoiser", **feeds)[0]

    def __call__(self, prompt: str | list[str], *, scale: float = 2.0, preset: str | None = None,
                 num_inference_steps: int | None = None, timesteps: list[int] | None = None,
                 guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
                 seed: int | None = 0, generator: torch.Generator | None = None, negative_prompt: str | None = None,
                 output_type: str = "pil", max_sequence_length: int = 300) -> OnnxPipelineOutput:
        """Generate images; unset sampling settings come from the adapter preset (as ``pladis generate``)."""
        from diffusers.image_processor import VaeImageProcessor
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps
        from diffusers.utils.torch_utils import randn_tensor

        meta, kind = self.meta, self.meta["kind"]
        defaults = self.preset_kwargs(preset)
        guidance = float(guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", 7.5))
        if timesteps is None and num_inference_steps is None:
            timesteps = defaults.get("timesteps")
            num_inference_steps = defaults.get("num_inference_steps", 50) if timesteps is None else None
        default_side = meta["default_sample_size"] * meta["vae_scale_factor"]
        height = int(height or defaults.get("height") or default_side)
        width = int(width or defaults.get("width") or default_side)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        cfg = guidance > 1.0
        embeds, extra = self._encode(prompts, negative_prompt, cfg, height, width, max_sequence_length)

        scheduler = self.make_scheduler(preset)
        steps, _ = retrieve_timesteps(scheduler, num_inference_steps, "cpu", timesteps)
        if generator is None:
            generator = torch.Generator().manual_seed(int(seed or 0))
        vsf = meta["vae_scale_factor"]
        shape = (len(prompts), meta["latent_channels"], height // vsf, width // vsf)
        latents = randn_tensor(shape, generator=generator, dtype=torch.float32)
        if kind != "sana":  # SanaPipeline.prepare_latents does not scale by init_noise_sigma
            latents = latents * scheduler.init_noise_sigma
        step_kwargs = _step_kwargs(scheduler, generator, float(defaults.get("eta", 0.0)))
        if kind == "sdxl" and hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)
        for t in steps:
            model_input = torch.cat([latents] * 2) if cfg else latents
            if kind != "sana":
                model_input = scheduler.scale_model_input(model_input, t)
            tvalue = t.float() * meta.get("timestep_scale", 1.0) if kind == "sana" else t.float()
            tfeed = np.full((model_input.shape[0],), float(tvalue), dtype=np.float32)
            noise = torch.from_numpy(self.denoise(model_input.numpy(), tfeed, embeds, scale=scale, **extra)).float()
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            if kind == "sana" and meta["out_channels"] // 2 == meta["latent_channels"]:
                noise = noise.chunk(2, dim=1)[0]
            latents = scheduler.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
        if output_type == "latent":
            return OnnxPipelineOutput(latents.numpy(), self.provider)
        if meta.get("latents_mean") is not None and meta.get("latents_std") is not None:
            mean = torch.tensor(meta["latents_mean"]).view(1, -1, 1, 1)
            std = torch.tensor(meta["latents_std"]).view(1, -1, 1, 1)
            latents = latents * std / meta["vae_scaling_factor"] + mean
        else:
            latents = latents / meta["vae_scaling_factor"]
        image = torch.from_numpy(self._run("vae_decoder", latents=latents.numpy())[0]).float()
        images = VaeImageProcessor(vae_scale_factor=vsf).postprocess(image, output_type=output_type)
        return OnnxPipelineOutput(images, self.provider)

    def _encode(self, prompts: list[str], negative: str | None, cfg: bool, height: int, width: int,
                max_sequence_length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        kind, n = self.meta["kind"], len(prompts)
        if kind == "sana":
            tok = self.tokenizers[0]
            tok.padding_side = "right"
            select = [0] + list(range(-max_sequence_length + 1, 0))

            def gemma(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
                texts = [t.lower().strip() for t in texts]
                enc = tok(texts, padding="max_length", max_length=max_sequence_length, truncation=True,
                          add_special_tokens=True, return_tensors="np")
                hidden = self._run("text_encoder", input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
                return hidden[:, select], enc["attention_mask"][:, select]

            embeds, mask = gemma(prompts)
            if cfg:
                neg, neg_mask = gemma([negative or ""] * n)
                embeds, mask = np.concatenate([neg, embeds]), np.concatenate([neg_mask, mask])
            return embeds, {"encoder_attention_mask": mask.astype(np.int64)}

        def clip(texts: list[str]) -> tuple[list[np.ndarray], np.ndarray | None]:
            hidden, pooled = [], None
            for i, tok in enumerate(self.tokenizers):
                ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                          return_tensors="np")["input_ids"]
                outs = self._run("text_encoder" if i == 0 else "text_encoder_2", input_ids=ids)
                hidden.append(outs[0])
                if len(outs) > 1:
                    pooled = outs[1]
            return hidden, pooled

        hidden, pooled = clip(prompts)
        embeds = np.concatenate(hidden, axis=-1)
        if kind == "sd":
            if cfg:
                embeds = np.concatenate([clip([negative or ""] * n)[0][0], embeds])
            return embeds, {}
        if cfg and negative is None and self.meta.get("force_zeros_for_empty_prompt", True):
            neg, neg_pooled = np.zeros_like(embeds), np.zeros_like(pooled)
        elif cfg:
            neg_hidden, neg_pooled = clip([negative or ""] * n)
            neg = np.concatenate(neg_hidden, axis=-1)
        time_ids = np.array([[height, width, 0, 0, height, width]] * n, dtype=np.float32)
        if cfg:
            embeds, pooled = np.concatenate([neg, embeds]), np.concatenate([neg_pooled, pooled])
            time_ids = np.concatenate([time_ids, time_ids])
        return embeds, {"text_embeds": pooled, "time_ids": time_ids}


def _step_kwargs(scheduler: Any, generator: torch.Generator, eta: float = 0.0) -> dict[str, Any]:
    """As diffusers' ``prepare_extra_step_kwargs``: ``eta`` (the preset's, else 0) and the generator where the
    scheduler takes them — the same generator that drew the initial latents, so ancestral / stochastic
    schedulers (Euler Ancestral, LCM, TCD) draw the same noise as the PyTorch pipeline."""
    import inspect

    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs
