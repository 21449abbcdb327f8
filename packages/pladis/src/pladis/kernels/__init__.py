"""Implementations of PLADIS attention (Eq. 15): eager torch, ``torch.compile`` and a fused Triton kernel.

:mod:`.backends` chooses between them; each module imports its optional dependency lazily.
"""
