"""Procedural captioned images whose text alignment is checkable by code (the toy model's training data).

Grammar (every prompt is one of these; ``C`` a colour, ``S`` a shape, ``N`` in two..four)::

    single    "a C S"                       e.g. "a red circle"
    count     "N C Ss"                      e.g. "three blue squares"
    binding   "a C1 S1 and a C2 S2"         e.g. "a red circle and a blue square"   (C1 != C2)
    relation  "a C1 S1 REL a C2 S2"         REL in "to the left of", "to the right of", "above", "below"

Images: ``SIZE`` x ``SIZE`` RGB (16 px), plain mid-gray background, flat-coloured shapes of side 5 or 7 px
(radius 2 or 3) that never touch (>= 1 px gap), rendered without anti-aliasing.  Relations hold with a
margin: "A to the left of B" means centre_x(A) <= centre_x(B) - 3 (likewise for the other three).

Held-out split (never used in training; the benchmark draws from it): :data:`HELD_OUT_PAIRS`, 8 of the 54
unordered pairs of differently coloured objects, are never shown together (neither in "and" nor in any
relation, in either order), and :data:`HELD_OUT_COUNTS`, 6 of the 36 (N, C, S) count prompts, never appear.
Everything is drawn from a seeded ``numpy.random.Generator``: same seed, same stream of images and captions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

SIZE = 16
BACKGROUND = (127, 127, 127)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (240, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
NUMBERS = {"two": 2, "three": 3, "four": 4}
RELATIONS = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below"}
MARGIN = 3
EXTRA_WORDS = ("circles", "squares", "triangles")
KIND_WEIGHTS = {"single": 0.1, "count": 0.25, "binding": 0.25, "relation": 0.4}

Obj = tuple[str, str]  # (colour, shape)


@dataclass(frozen=True)
class Spec:
    """A parsed prompt: ``kind``, objects ``[(colour, shape)]``, per-object count, optional relation."""

    kind: str
    objects: tuple[Obj, ...]
    count: int = 1
    relation: str | None = None  # "left" | "right" | "above" | "below": objects[0] REL objects[1]


def _split() -> tuple[frozenset, frozenset]:
    rng = np.random.default_rng(1234)
    objs = [(c, s) for c in COLOURS for s in SHAPES]
    pairs = [frozenset((a, b)) for a, b in itertools.combinations(objs, 2) if a[0] != b[0]]
    held_pairs = frozenset(pairs[i] for i in rng.permutation(len(pairs))[:8])
    counts = [(n, c, s) for n in NUMBERS for c in COLOURS for s in SHAPES]
    held_counts = frozenset(counts[i] for i in rng.permutation(len(counts))[:6])
    return held_pairs, held_counts


HELD_OUT_PAIRS, HELD_OUT_COUNTS = _split()


def prompt_of(spec: Spec) -> str:
    (c1, s1), *rest = spec.objects
    if spec.kind == "single":
        return f"a {c1} {s1}"
    if spec.kind == "count":
        number = {v: k for k, v in NUMBERS.items()}[spec.count]
        return f"{number} {c1} {s1}s"
    c2, s2 = rest[0]
    if spec.kind == "binding":
        return f"a {c1} {s1} and a {c2} {s2}"
    phrase = {v: k for k, v in RELATIONS.items()}[spec.relation]
    return f"a {c1} {s1} {phrase} a {c2} {s2}"


def parse(prompt: str) -> Spec:
    """The :class:`Spec` of a prompt of the grammar (``ValueError`` otherwise)."""
    words = prompt.strip().lower().split()
    try:
        if words[0] in NUMBERS and len(words) == 3 and words[2].endswith("s"):
            return _checked(Spec("count", ((words[1], words[2][:-1]),), count=NUMBERS[words[0]]))
        if words[0] == "a" and len(words) == 3:
            return _checked(Spec("single", ((words[1], words[2]),)))
        if words[0] == "a" and len(words) >= 6 and words[-3] == "a":
            first, second = (words[1], words[2]), (words[-2], words[-1])
            middle = " ".join(words[3:-3])
            if middle == "and":
                return _checked(Spec("binding", (first, second)))
            if middle in RELATIONS:
                return _checked(Spec("relation", (first, second), relation=RELATIONS[middle]))
    except (IndexError, KeyError):
        pass
    raise ValueError(f"not a prompt of the toy grammar: {prompt!r}")


def _checked(spec: Spec) -> Spec:
    for colour, shape in spec.objects:
        if colour not in COLOURS or shape not in SHAPES:
            raise KeyError(colour)
    return spec


def all_specs() -> list[Spec]:
    objs = [(c, s) for c in COLOURS for s in SHAPES]
    specs = [Spec("single", (o,)) for o in objs]
    specs += [Spec("count", ((c, s),), count=n) for n in NUMBERS.values() for c, s in objs]
    for a, b in itertools.permutations(objs, 2):
        if a[0] != b[0]:
            specs.append(Spec("binding", (a, b)))
            specs += [Spec("relation", (a, b), relation=r) for r in RELATIONS.values()]
    return specs


def is_held_out(spec: Spec) -> bool:
    if spec.kind == "count":
        number = {v: k for k, v in NUMBERS.items()}[spec.count]
        return (number, *spec.objects[0]) in HELD_OUT_COUNTS
    if len(spec.objects) == 2:
        return frozenset(spec.objects) in HELD_OUT_PAIRS
    return False


def training_specs() -> dict[str, list[Spec]]:
    out: dict[str, list[Spec]] = {k: [] for k in KIND_WEIGHTS}
    for spec in all_specs():
        if not is_held_out(spec):
            out[spec.kind].append(spec)
    return out


def held_out_specs() -> list[Spec]:
    return [s for s in all_specs() if is_held_out(s)]


def shape_mask(shape: str, r: int) -> np.ndarray:
    """Boolean (2r+1, 2r+1) mask: square (fill 1.0), circle (~0.76-0.84), triangle pointing up (~0.5)."""
    d = np.arange(-r, r + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    if shape == "square":
        return np.ones((2 * r + 1, 2 * r + 1), bool)
    if shape == "circle":
        return dx**2 + dy**2 <= (r + 0.5) ** 2
    if shape == "triangle":
        return np.abs(dx) <= (dy + r) // 2
    raise ValueError(shape)


def _place(rng: np.random.Generator, radii: list[int], rel: str | None) -> list[tuple[int, int]]:
    """Rejection sampling, 256 candidate layouts at a time (vectorised): the first valid one."""
    r = np.array(radii)
    for _ in range(50):
        cand = rng.integers(r, SIZE - r, size=(256, 2, len(r)))  # (candidate, y/x, object)
        ok = np.ones(256, bool)
        for i, j in itertools.combinations(range(len(r)), 2):
            gap = np.abs(cand[:, :, i] - cand[:, :, j]).max(axis=1)
            ok &= gap >= r[i] + r[j] + 2
        if rel is not None:
            (ya, xa), (yb, xb) = cand[:, :, 0].T, cand[:, :, 1].T
            ok &= {"left": xa <= xb - MARGIN, "right": xa >= xb + MARGIN,
                   "above": ya <= yb - MARGIN, "below": ya >= yb + MARGIN}[rel]
        hits = np.flatnonzero(ok)
        if hits.size:
            c = cand[hits[0]]
            return [(int(c[0, k]), int(c[1, k])) for k in range(len(r))]
    raise RuntimeError("could not place the objects")  # pragma: no cover - never happens at SIZE 16


def render(spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """A uint8 (SIZE, SIZE, 3) image that satisfies ``spec`` exactly."""
    objs = list(spec.objects) * spec.count if spec.kind == "count" else list(spec.objects)
    radii = [int(rng.integers(2, 4)) for _ in objs]
    if spec.kind == "count" and spec.count == 4:
        radii = [2] * 4 if rng.random() < 0.5 else radii
    for _ in range(100):
        try:
            centres = _place(rng, radii, spec.relation)
            break
        except RuntimeError:
            radii = [2] * len(objs)
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = BACKGROUND
    for (colour, shape), (cy, cx), r in zip(objs, centres, radii, strict=True):
        mask = shape_mask(shape, r)
        image[cy - r:cy + r + 1, cx - r:cx + r + 1][mask] = COLOURS[colour]
    return image


def sample_specs(rng: np.random.Generator, n: int, pool: dict[str, list[Spec]] | None = None) -> list[Spec]:
    pool = training_specs() if pool is None else pool
    kinds = list(KIND_WEIGHTS)
    picks = rng.choice(len(kinds), size=n, p=np.array(list(KIND_WEIGHTS.values())))
    return [pool[kinds[k]][int(rng.integers(len(pool[kinds[k]])))] for k in picks]


def batch(rng: np.random.Generator, n: int, pool: dict[str, list[Spec]] | None = None
          ) -> tuple[np.ndarray, list[str]]:
    """``n`` training images (uint8, N x SIZE x SIZE x 3) and their captions."""
    specs = sample_specs(rng, n, pool)
    return np.stack([render(s, rng) for s in specs]), [prompt_of(s) for s in specs]
