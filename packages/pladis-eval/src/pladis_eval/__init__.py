"""Evaluation of PLADIS (arXiv:2503.07677): does Eq. 15 help *this* model on *these* prompts?

``pladis evaluate`` scores a folder of ``pladis generate`` / ``sweep`` / ``benchmark`` images with
CLIPScore, PickScore, ImageReward, HPSv2.1, FID or the toy alignment score and prints mean ± 95 % CI
per setting with the paired difference to the baseline; ``pladis benchmark`` generates such a folder
(prompt × seed × setting, sharded under 🤗 Accelerate, resumable) and evaluates it. Both commands come
in through the ``pladis.plugins`` entry point (:mod:`pladis_eval.plugin`); importing this package
imports neither torch nor any metric library.
"""

__all__: list[str] = []
