"""The toy benchmark of docs/evaluation.md: the held-out prompt set and one ``pladis benchmark`` run.

    .venv/bin/python tools/toy/bench.py --out outputs/toy-benchmark     # = the command in docs/evaluation.md

Any further option goes to ``pladis benchmark`` (e.g. ``--limit 2 --seeds 0 --steps 1`` for a smoke run).
The scoring is the ``toy-alignment`` metric of pladis-eval (``toy/scorer.py``'s ``overall``); the prompts
are :func:`prompts` (``pladis benchmark --prompts toy``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from toy import data  # noqa: E402

#: The rows of docs/evaluation.md's toy table: no guidance, CFG 3/5/7.5, CFG+PAG, CFG+SEG, ± PLADIS.
SETTINGS = ("cfg=1;cfg=1,pladis=1;cfg=1,pladis=2;cfg=1,pladis=2,alpha=2;cfg=3;cfg=5;cfg=5,pladis=2;cfg=7.5;"
            "cfg=5,pag=3;cfg=5,pag=3,pladis=2;cfg=5,seg=3;cfg=5,seg=3,pladis=2")
SEEDS = "0-3"


def prompts(n_per_pair: int = 3) -> list[str]:
    """The benchmark's held-out prompt set: the 6 held-out count prompts, and for each of the 8 held-out
    object pairs one "and" prompt and ``n_per_pair - 1`` relation prompts (order and relation drawn from
    a seeded generator)."""
    rng = np.random.default_rng(7)
    held = data.held_out_specs()
    out = sorted(data.prompt_of(s) for s in held if s.kind == "count")
    for pair in sorted(data.HELD_OUT_PAIRS, key=sorted):
        both = [s for s in held if len(s.objects) == 2 and frozenset(s.objects) == pair]
        binding = sorted((s for s in both if s.kind == "binding"), key=data.prompt_of)
        relation = sorted((s for s in both if s.kind == "relation"), key=data.prompt_of)
        out.append(data.prompt_of(binding[int(rng.integers(len(binding)))]))
        for i in rng.permutation(len(relation))[: n_per_pair - 1]:
            out.append(data.prompt_of(relation[int(i)]))
    return out


def main(argv: list[str] | None = None) -> int:
    """``pladis benchmark --prompts toy --seeds 0-3 --settings SETTINGS`` followed by ``argv``."""
    from pladis_eval.__main__ import main as eval_main

    argv = list(sys.argv[1:] if argv is None else argv)
    return eval_main(["benchmark", "--prompts", "toy", "--seeds", SEEDS, "--settings", SETTINGS, *argv])


if __name__ == "__main__":
    sys.exit(main())
