"""The evaluation table in the paper's format (markdown), as CSV and JSON, and a plot of each metric
against λ."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from .harness import Table
from .stats import Estimate

_ARROW = {True: "↑", False: "↓"}
#: Digits per metric (the paper: CLIPScore/PickScore/HPS/FID 2, ImageReward 3).
DIGITS = {"imagereward": 3}


def _digits(metric: str) -> int:
    return DIGITS.get(metric, 2)


def _cell(value: Estimate, difference: Estimate | None, digits: int) -> str:
    text = value.format(digits)
    if difference is not None:
        sign = "+" if difference.mean >= 0 else "−"
        half = "" if math.isnan(difference.half_width) else f" ± {difference.half_width:.{digits}f}"
        text += f" ({sign}{abs(difference.mean):.{digits}f}{half})"
    return text


def markdown(table: Table) -> str:
    """Rows = settings; each cell ``mean ± 95 % CI (paired difference ± CI)`` as in the paper's tables."""
    head = ["setting", "images", "vs"] + [f"{m} {_ARROW[table.higher_is_better[m]]}" for m in table.metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        cells = [_cell(row.cells[m].value, row.cells[m].difference, _digits(m)) for m in table.metrics]
        lines.append("| " + " | ".join([row.setting.label, str(row.images),
                                         row.baseline.label if row.baseline else "—", *cells]) + " |")
    lines += ["", "mean ± 95 % CI (normal approximation) over the images of a setting; in brackets the mean paired "
              "difference to the setting named under 'vs' (images of the same prompt and seed) ± its 95 % CI; "
              "FID is one number per setting (no interval)."]
    return "\n".join(lines)


def records(table: Table) -> list[dict[str, Any]]:
    """One flat record per setting × metric (the CSV's rows)."""
    out = []
    for row in table.rows:
        for metric in table.metrics:
            cell = row.cells[metric]
            out.append({
                "setting": row.setting.label, **row.setting.as_dict(), "metric": metric,
                "model": table.models.get(metric), "images": row.images, "mean": cell.value.mean,
                "ci95": cell.value.half_width, "baseline": row.baseline.label if row.baseline else "",
                "diff_mean": cell.difference.mean if cell.difference else "",
                "diff_ci95": cell.difference.half_width if cell.difference else "",
                "diff_pairs": cell.difference.n if cell.difference else "",
            })
    return out


def write(table: Table, out: Path, stem: str = "evaluation") -> list[Path]:
    """Write ``stem``.md, .csv, .json and .png (the plot) into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = records(table)
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.json", out / f"{stem}.png"]
    paths[0].write_text(markdown(table) + "\n", encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths[1].write_text(buffer.getvalue(), encoding="utf-8")
    finite = [{key: _json_nan(value) for key, value in row.items()} for row in rows]  # NaN → null
    paths[2].write_text(json.dumps({"metrics": table.metrics, "models": table.models, "rows": finite},
                                   indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plot(table, paths[3])
    return paths


def _json_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def plot(table: Table, path: Path) -> None:
    """One panel per metric: the metric against λ for each guidance (λ = 0: PLADIS off), 95 % CI bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(table.metrics), figsize=(4.2 * len(table.metrics), 3.4), squeeze=False)
    groups: dict[tuple, list] = {}
    for row in table.rows:
        guidance = (row.setting.cfg, row.setting.pag, row.setting.seg, row.setting.alpha if row.setting.pladis else None)
        groups.setdefault(guidance, []).append(row)
    for axis, metric in zip(axes[0], table.metrics, strict=True):
        for (*_, alpha), rows in groups.items():
            if alpha is None:
                continue
            base = [r for r in table.rows if r.setting == rows[0].setting.baseline()]
            points = sorted(base + rows, key=lambda r: r.setting.pladis)
            label = rows[0].setting.baseline().label + f", α={alpha:g}"
            axis.errorbar([r.setting.pladis for r in points], [r.cells[metric].value.mean for r in points],
                          yerr=[_finite(r.cells[metric].value.half_width) for r in points], marker="o",
                          capsize=3, label=label)
        for (cfg, pag, seg, alpha), rows in groups.items():  # PLADIS-off rows without a PLADIS curve
            if alpha is None and not any(a is not None and (c, p, s) == (cfg, pag, seg) for c, p, s, a in groups):
                for r in rows:
                    axis.axhline(r.cells[metric].value.mean, linestyle="--", linewidth=1, color="grey")
                    axis.annotate(r.setting.label, (0, r.cells[metric].value.mean), fontsize=7, color="grey")
        axis.set_xlabel("PLADIS λ (0 = off)")
        axis.set_title(f"{metric} {_ARROW[table.higher_is_better[metric]]}")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value
