"""The five back-ends of PLADIS attention (Eq. 15), chosen per call by :mod:`.backends`:

* ``eager`` (:mod:`.eager`): torch ops, tiled over heads and queries, the sort-free threshold solver of
  :mod:`pladis.alpha_entmax`; runs anywhere, float64 included;
* ``compile`` (:mod:`.compiled`): the per-row work fused by ``torch.compile`` (C++ on CPU, Triton on CUDA);
* ``triton`` (:mod:`.triton_kernel`, launched by :mod:`.triton_launch`): one fused CUDA kernel for QKᵀ,
  both normalisations, the λ-mix and M·V;
* ``native`` (:mod:`.native`): one fused C kernel (``native_kernel.c``) for the per-row work on CPU,
  built on first use and cached;
* ``auto``: the fastest of these that can run the inputs at hand (:func:`.backends.choose`).

With autograd recording, :mod:`.differentiable` runs instead (exact gradients); inside a
``torch.compile`` trace, the opaque operator of :mod:`.custom_op`. Each module imports its optional
dependency lazily.
"""
