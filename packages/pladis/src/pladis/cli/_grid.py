"""Image grids with captions (PIL, default font) and heat-map overlays."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PAD = 8
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
FONT_SIZE = 14
#: Cells narrower than this are upscaled by an integer factor (nearest neighbour) so captions fit.
MIN_CELL = 192

# A perceptually ordered colour map (magma-like anchors, dark → bright), interpolated linearly.
_ANCHORS = ((0.0, (0, 0, 4)), (0.25, (81, 18, 124)), (0.5, (183, 55, 121)), (0.75, (252, 137, 97)),
            (1.0, (252, 253, 191)))


def font(size: int = FONT_SIZE) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, fixed size
        return ImageFont.load_default()


def text_size(text: str, face: Any) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text or " ", font=face)
    return right - left, bottom - top


def wrap(text: str, face: Any, width: int) -> list[str]:
    """``text`` broken into lines that fit ``width`` pixels."""
    char_w = max(1, text_size("abcdefghij", face)[0] // 10)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, max(8, width // char_w)) or [""]
    return lines


def make_grid(
    cells: Sequence[Sequence[Image.Image | None]],
    *,
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    footer: str | None = None,
    min_cell: int = MIN_CELL,
) -> tuple[Image.Image, dict[str, Any]]:
    """Cells in rows and columns, column labels above, row labels left, wrapped title and footer.

    Every image is scaled to the common cell size (the largest image, upscaled by an integer factor to
    at least ``min_cell`` wide, nearest neighbour). Returns the grid and its layout: rows, cols, cell
    size, scale factor, grid size and the box (x0, y0, x1, y1) of every cell, row-major.
    """
    rows, cols = len(cells), max(len(row) for row in cells)
    images = [image for row in cells for image in row if image is not None]
    base_w = max(image.width for image in images)
    base_h = max(image.height for image in images)
    factor = max(1, -(-min_cell // base_w))
    cell_w, cell_h = base_w * factor, base_h * factor
    face, small = font(), font(FONT_SIZE - 2)
    line_h = text_size("Ag", face)[1] + 4

    left = PAD + (max(text_size(label, face)[0] for label in row_labels) + PAD if row_labels else 0)
    width = left + cols * cell_w + (cols - 1) * PAD + PAD
    title_lines = wrap(title, face, width - 2 * PAD) if title else []
    footer_lines = wrap(footer, small, width - 2 * PAD) if footer else []
    label_lines = max((len(wrap(label, face, cell_w)) for label in col_labels), default=0) if col_labels else 0
    top = PAD + len(title_lines) * line_h + (PAD if title_lines else 0) + label_lines * line_h
    height = top + rows * cell_h + (rows - 1) * PAD + PAD + len(footer_lines) * line_h + (PAD if footer_lines else 0)

    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    y = PAD
    for line in title_lines:
        draw.text((PAD, y), line, fill=INK, font=face)
        y += line_h
    boxes = []
    for c in range(cols):
        x = left + c * (cell_w + PAD)
        for i, line in enumerate(wrap(col_labels[c], face, cell_w) if col_labels and c < len(col_labels) else []):
            line_w = text_size(line, face)[0]
            draw.text((x + max(0, (cell_w - line_w) // 2), top - label_lines * line_h + i * line_h), line,
                      fill=INK, font=face)
    for r, row in enumerate(cells):
        y = top + r * (cell_h + PAD)
        if row_labels:
            draw.text((PAD, y + cell_h // 2 - line_h // 2), row_labels[r], fill=INK, font=face)
        for c in range(cols):
            x = left + c * (cell_w + PAD)
            boxes.append([x, y, x + cell_w, y + cell_h])
            image = row[c] if c < len(row) else None
            if image is not None:
                grid.paste(fit(image, cell_w, cell_h), (x, y))
    y = top + rows * cell_h + (rows - 1) * PAD + PAD
    for line in footer_lines:
        draw.text((PAD, y), line, fill=MUTED, font=small)
        y += line_h
    layout = {"rows": rows, "cols": cols, "cell": [cell_w, cell_h], "scale": factor,
              "size": [width, height], "boxes": boxes}
    return grid, layout


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` as RGB at ``width``×``height`` (nearest neighbour, so integer upscales stay exact)."""
    image = image.convert("RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.NEAREST)


def colorize(values: Any) -> Image.Image:
    """A 2-D array in [0, 1] as an RGB heat map (magma-like colours)."""
    import numpy as np

    values = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    stops = np.array([stop for stop, _ in _ANCHORS], dtype=np.float32)
    colours = np.array([colour for _, colour in _ANCHORS], dtype=np.float32)
    rgb = np.stack([np.interp(values, stops, colours[:, channel]) for channel in range(3)], axis=-1)
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def overlay(image: Image.Image, values: Any, opacity: float = 0.6) -> Image.Image:
    """The heat map of ``values`` (2-D, [0, 1]) resized to ``image`` and blended over it."""
    heat = colorize(values).resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), heat, opacity)


def colour_bar(width: int, height: int, top: str = "peak", bottom: str = "0") -> Image.Image:
    """A vertical colour bar of :func:`colorize` (bright = ``top`` at the top, dark = ``bottom``) with
    tick labels at the top, middle and bottom, ``width``×``height``."""
    import numpy as np

    bar_w = max(4, width // 4)
    ramp = np.repeat(np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None], bar_w, axis=1)
    image = Image.new("RGB", (width, height), BACKGROUND)
    image.paste(colorize(ramp), (PAD // 2, 0))
    draw, face = ImageDraw.Draw(image), font(FONT_SIZE - 2)
    text_h = text_size("Ag", face)[1]
    x = PAD // 2 + bar_w + 4
    for y, label in ((0, top), ((height - text_h) // 2, "half"), (height - text_h - 4, bottom)):
        draw.text((x, y), label, fill=INK, font=face)
    return image
