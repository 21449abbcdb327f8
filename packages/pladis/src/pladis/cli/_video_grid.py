"""The latent token grid of a video transformer (Wan, LTX-Video), for ``maps --frame`` on intercepted calls.

Their text cross-attention sees all frames in one call: its queries are the patchified latent tokens in
(frames, h, w) order (``WanTransformer3DModel``'s patch embedding flattened, ``LTXPipeline._pack_latents``).
The grid follows from the pipeline's VAE compression and the transformer's patch size, as the pipelines
compute their latents: ``(num_frames - 1) // r + 1`` latent frames (r: temporal compression) of
``height // s`` x ``width // s`` (s: spatial compression), cut into patches ``(p_t, p_h, p_w)``.

Pixel frame → latent frame: these causal VAEs decode latent frame 0 into pixel frame 0 and every later
latent frame j into the r pixel frames ``(j - 1) * r + 1 … j * r``; pixel frame k is therefore decoded from
latent frame ``0`` if k = 0, else ``(k - 1) // r + 1``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


def frame_size(session: Any) -> tuple[int, int]:
    """(height, width) of the session's calls (the pipeline's ``__call__`` defaults where none is set)."""
    params = inspect.signature(type(session.pipe).__call__).parameters
    sizes = []
    for name in ("height", "width"):
        value = session.call_kwargs.get(name, params[name].default if name in params else None)
        if not isinstance(value, int):
            raise RuntimeError(f"maps: {type(session.pipe).__name__} has no default {name}; pass --{name}")
        sizes.append(value)
    return sizes[0], sizes[1]


def _compression(pipe: Any) -> tuple[int, int]:
    """(temporal, spatial) compression of the pipeline's VAE, as its own attributes give them."""
    for temporal, spatial in (("vae_scale_factor_temporal", "vae_scale_factor_spatial"),  # Wan
                              ("vae_temporal_compression_ratio", "vae_spatial_compression_ratio")):  # LTX
        if hasattr(pipe, temporal) and hasattr(pipe, spatial):
            return int(getattr(pipe, temporal)), int(getattr(pipe, spatial))
    raise RuntimeError(f"maps: {type(pipe).__name__} does not say its VAE's temporal and spatial compression")


def _patch(transformer: Any) -> tuple[int, int, int]:
    """(p_t, p_h, p_w) of the transformer's patch embedding."""
    config = transformer.config
    patch = config.get("patch_size", 1)
    if isinstance(patch, (list, tuple)):  # Wan: (t, h, w)
        return int(patch[0]), int(patch[1]), int(patch[2])
    return int(config.get("patch_size_t", 1) or 1), int(patch), int(patch)  # LTX: patch_size, patch_size_t


@dataclass(frozen=True)
class LatentGrid:
    """The token grid of one clip: ``frames`` latent frames (temporal ratio ``ratio``), ``height`` x
    ``width`` tokens per token frame, ``patch_t`` latent frames per token frame."""

    frames: int
    height: int
    width: int
    ratio: int
    patch_t: int = 1

    @classmethod
    def of(cls, pipe: Any, num_frames: int, height: int, width: int) -> LatentGrid:
        temporal, spatial = _compression(pipe)
        patch_t, patch_h, patch_w = _patch(pipe.transformer)
        frames = (num_frames - 1) // temporal + 1
        return cls(frames, height // spatial // patch_h, width // spatial // patch_w, temporal, patch_t)

    @property
    def decoded_frames(self) -> int:
        """Frames of the decoded clip: 1 + r per later latent frame."""
        return (self.frames - 1) * self.ratio + 1

    def latent_frame(self, frame: int) -> int:
        """The latent frame pixel frame ``frame`` is decoded from (see the module docstring)."""
        return 0 if frame == 0 else (frame - 1) // self.ratio + 1

    def frame_tokens(self, latent: int, count: int) -> slice:
        """The query tokens of latent frame ``latent`` among an attention call's ``count`` queries."""
        per_frame = self.height * self.width
        token_frames = -(-self.frames // self.patch_t)
        if count != token_frames * per_frame:
            raise RuntimeError(f"maps: a cross-attention call has {count} queries, not the {token_frames} x "
                               f"{self.height} x {self.width} tokens of the latent grid")
        start = latent // self.patch_t * per_frame
        return slice(start, start + per_frame)
