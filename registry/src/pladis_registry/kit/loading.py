"""Loading real weights for adapters: base pipelines, distilled UNet checkpoints and fused LoRAs.

Safetensors come first; a ``.bin`` checkpoint is read with ``torch.load(weights_only=True)``, never by
unpickling arbitrary objects. A ``source`` is a local file, a local folder holding ``filename``, or a
hub repo id (downloaded with ``huggingface_hub``; unavailable offline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def resolve_file(source: str | os.PathLike[str], filename: str | None = None) -> Path:
    """A local path for ``source`` (a file), ``source/filename`` (a folder) or a hub repo's file."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        if filename is None or not (path / filename).is_file():
            raise FileNotFoundError(f"no weights file {filename!r} in folder {str(path)!r}")
        return path / filename
    if filename is None:
        raise FileNotFoundError(f"weights file {str(source)!r} does not exist")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(str(source), filename))


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors from a ``.safetensors`` file, or a ``.bin``/``.pt`` file loaded with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} does not hold a state dict")
    return state


def load_pretrained(pipeline_class: Any, model: str | os.PathLike[str], **kwargs: Any) -> Any:
    """``pipeline_class.from_pretrained`` preferring safetensors (diffusers reads ``.bin`` weights-only)."""
    variant = kwargs.pop("variant", None)
    try:
        return pipeline_class.from_pretrained(str(model), variant=variant, **kwargs)
    except (OSError, ValueError) as error:
        if variant is None:
            raise
        # fp16 variant files missing: fall back to the default weights, cast by torch_dtype
        try:
            return pipeline_class.from_pretrained(str(model), **kwargs)
        except (OSError, ValueError):
            raise error from None


def load_unet_checkpoint(pipe: Any, path: str | os.PathLike[str]) -> None:
    """Replace the pipeline UNet's weights by a full distilled UNet checkpoint (strict).

    The whole checkpoint is checked against the UNet first (every key present, none unknown, every
    tensor of the expected shape): a checkpoint that does not fit raises ``ValueError`` with the UNet
    untouched."""
    state = load_state_dict(path)
    unet = pipe.unet
    expected = unet.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{str(path)!r} is not a UNet checkpoint for this pipeline: {len(missing)} missing keys "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:2]})"
        )
    import torch

    wrong = [
        f"{key}: {tuple(getattr(state[key], 'shape', ()))} instead of {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if not isinstance(state[key], torch.Tensor) or state[key].shape != tensor.shape
    ]
    if wrong:
        raise ValueError(
            f"{str(path)!r} does not fit this pipeline's UNet: {len(wrong)} tensors of the wrong shape or "
            f"type (e.g. {wrong[:2]})"
        )
    unet.load_state_dict({key: state[key].to(expected[key].dtype) for key in expected}, strict=True)


def fuse_lora(pipe: Any, path: str | os.PathLike[str], *, lora_scale: float = 1.0) -> None:
    """Load a LoRA file into the pipeline, fuse it into the weights and unload the adapter layers."""
    path = Path(path)
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="pladis_distilled")
    pipe.fuse_lora(lora_scale=lora_scale)
    pipe.unload_lora_weights()
