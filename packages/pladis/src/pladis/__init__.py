"""PLADIS: boost text-to-image diffusion models at inference time with sparse cross-attention.

Eq. 15 of the paper: At_PLADIS = At_dense + λ · (At_α-entmax − At_dense), defaults α = 1.5, λ = 2.0.

    import pladis
    handle = pladis.apply(pipe)          # every cross-attention, λ = 2, α = 1.5
    image = pipe(prompt).images[0]
    handle.remove()                      # or pladis.remove(pipe), or `with pladis.enabled(pipe): ...`
"""

from ._checks import PLADISSettings, PLADISWarning
from .adapters import AdapterSummary, list_adapters
from .alpha_entmax import entmax, entmax15, entmax_threshold, sparsemax
from .apply import PLADISHandle, apply, enabled, remove
from .attention import pladis_attention
from .processor import PLADISAttnProcessor

__all__ = [
    "AdapterSummary",
    "PLADISAttnProcessor",
    "PLADISHandle",
    "PLADISSettings",
    "PLADISWarning",
    "apply",
    "enabled",
    "entmax",
    "entmax15",
    "entmax_threshold",
    "list_adapters",
    "pladis_attention",
    "remove",
    "sparsemax",
]
__version__ = "0.1.0"
