"""Deterministic text-alignment scorer for the toy grammar (no neural network).

``score(image, prompt)`` parses the prompt (:func:`toy.data.parse`), segments the image by colour
(each pixel goes to the nearest palette colour if it is within ``THRESHOLD`` of it in RGB, else to the
background), splits each colour into 4-connected components (ignoring specks under ``MIN_AREA`` pixels),
classifies each component's shape by its fill ratio (area / bounding-box area: square >= 0.9, circle
0.66 - 0.9, triangle < 0.66) and returns the checks that apply to the prompt:

* ``presence``: fraction of the named objects whose colour has at least one component;
* ``binding``: fraction of the named objects bound to the right shape -- the largest component of their
  colour has the named shape (for counts: at least half of that colour's components do);
* ``count``: 1 if every named colour has exactly the named number of components (1 unless a count prompt)
  and no other palette colour has any, else 0;
* ``relation`` (relation prompts only): 1 if the centroids of the two objects' largest components satisfy
  the relation by more than ``REL_MARGIN`` pixel, else 0.

``overall`` is the mean of the applicable checks; ``all`` is 1 when every check is fully satisfied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import data

THRESHOLD = 90.0
MIN_AREA = 4
REL_MARGIN = 1.0


@dataclass(frozen=True)
class Component:
    colour: str
    area: int
    cy: float
    cx: float
    fill: float

    @property
    def shape(self) -> str:
        return "square" if self.fill >= 0.9 else "circle" if self.fill >= 0.66 else "triangle"


def segment(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour index into ``list(data.COLOURS)``; -1 for background / unclassified."""
    palette = np.array(list(data.COLOURS.values()) + [data.BACKGROUND], float)
    dist = np.linalg.norm(image[..., None, :].astype(float) - palette, axis=-1)
    label = dist.argmin(-1)
    label[(dist.min(-1) > THRESHOLD) | (label == len(data.COLOURS))] = -1
    return label


def components(image: np.ndarray) -> list[Component]:
    """4-connected components of each palette colour, largest first (specks dropped)."""
    label = segment(np.asarray(image)[..., :3])
    h, w = label.shape
    seen = np.zeros_like(label, bool)
    names = list(data.COLOURS)
    found = []
    for y0 in range(h):
        for x0 in range(w):
            if label[y0, x0] < 0 or seen[y0, x0]:
                continue
            c, stack, pixels = label[y0, x0], [(y0, x0)], []
            seen[y0, x0] = True
            while stack:
                y, x = stack.pop()
                pixels.append((y, x))
                for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and label[ny, nx] == c:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            if len(pixels) < MIN_AREA:
                continue
            ys, xs = np.array(pixels).T
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            found.append(Component(names[c], len(pixels), ys.mean(), xs.mean(), len(pixels) / box))
    return sorted(found, key=lambda comp: -comp.area)


def _relation_holds(rel: str, a: Component, b: Component) -> bool:
    return {"left": a.cx < b.cx - REL_MARGIN, "right": a.cx > b.cx + REL_MARGIN,
            "above": a.cy < b.cy - REL_MARGIN, "below": a.cy > b.cy + REL_MARGIN}[rel]


def score(image: np.ndarray, prompt: str) -> dict[str, float]:
    """The applicable checks (``presence``, ``binding``, ``count``, maybe ``relation``) plus ``overall``
    and ``all``, each in [0, 1], for one uint8 RGB image and one prompt of the toy grammar."""
    spec = data.parse(prompt)
    comps = components(image)
    by_colour = {c: [k for k in comps if k.colour == c] for c in data.COLOURS}
    presence = np.mean([bool(by_colour[c]) for c, _ in spec.objects])
    bound = []
    for colour, shape in spec.objects:
        mine = by_colour[colour]
        if spec.kind == "count":
            bound.append(bool(mine) and np.mean([k.shape == shape for k in mine]) >= 0.5)
        else:
            bound.append(bool(mine) and mine[0].shape == shape)
    named = {c for c, _ in spec.objects}
    count = all(len(by_colour[c]) == spec.count for c in named) and not any(
        by_colour[c] for c in data.COLOURS if c not in named)
    out = {"presence": float(presence), "binding": float(np.mean(bound)), "count": float(count)}
    if spec.relation is not None:
        (ca, _), (cb, _) = spec.objects
        ok = bool(by_colour[ca]) and bool(by_colour[cb]) and _relation_holds(
            spec.relation, by_colour[ca][0], by_colour[cb][0])
        out["relation"] = float(ok)
    out["overall"] = float(np.mean(list(out.values())))
    out["all"] = float(all(v == 1.0 for k, v in out.items() if k != "overall"))
    return out
