"""One setting of a benchmark row (CFG, PAG, SEG, PLADIS λ/α), parsed from ``"cfg=5,pag=3,pladis=2"``
or read back from an image's JSON sidecar."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

#: --settings of ``pladis benchmark`` by default: CFG alone, + PLADIS, and CFG raised (the fair baseline).
DEFAULT_SETTINGS = "cfg=5;cfg=5,pladis=2;cfg=7.5;cfg=10"
KEYS = ("cfg", "pag", "seg", "pladis", "alpha")
_DEFAULT_ALPHA = 1.5


@dataclass(frozen=True, order=True)
class Setting:
    """Guidance and PLADIS of one row: ``cfg`` None means the model's own default guidance scale."""

    cfg: float | None = None
    pag: float = 0.0
    seg: float = 0.0
    pladis: float = 0.0  # λ of Eq. 15; 0 = PLADIS off
    alpha: float = _DEFAULT_ALPHA

    @property
    def label(self) -> str:
        """``cfg=5,pag=3,pladis=2`` (α shown when not 1.5; PLADIS off and zero scales left out)."""
        parts = [] if self.cfg is None else [f"cfg={self.cfg:g}"]
        parts += [f"{name}={value:g}" for name, value in (("pag", self.pag), ("seg", self.seg)) if value]
        if self.pladis:
            parts.append(f"pladis={self.pladis:g}")
            if self.alpha != _DEFAULT_ALPHA:
                parts.append(f"alpha={self.alpha:g}")
        return ",".join(parts) or "default"

    @property
    def slug(self) -> str:
        """A folder name for the setting's images."""
        return self.label.replace("=", "").replace(",", "_")

    def baseline(self) -> Setting:
        """The same guidance with PLADIS off (the row a PLADIS row is paired with)."""
        return replace(self, pladis=0.0, alpha=_DEFAULT_ALPHA)

    def as_dict(self) -> dict[str, Any]:
        return {"cfg": self.cfg, "pag": self.pag, "seg": self.seg, "pladis": self.pladis, "alpha": self.alpha}


def parse_setting(text: str) -> Setting:
    """``"cfg=5,pag=3,pladis=2"`` → :class:`Setting` (ValueError naming the bad key or value)."""
    values: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item or item.lower() == "default":  # the model's / preset's own guidance scale
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in KEYS:
            raise ValueError(f"setting {text!r}: expected KEY=VALUE with KEY in {', '.join(KEYS)}; got {item!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"setting {text!r}: {key} must be a number; got {raw.strip()!r}") from None
        if not math.isfinite(value) or (key != "pladis" and value < 0):
            raise ValueError(f"setting {text!r}: {key} must be a finite number"
                             + ("" if key == "pladis" else " >= 0") + f"; got {raw.strip()!r}")
        if key == "alpha" and not 1.0 <= value <= 2.0:
            raise ValueError(f"setting {text!r}: alpha must be in [1, 2]; got {raw.strip()}")
        if key in values:
            raise ValueError(f"setting {text!r}: {key} given twice")
        values[key] = value
    if values.get("pag") and values.get("seg"):
        raise ValueError(f"setting {text!r}: pag and seg cannot be combined")
    return Setting(**values)


def parse_settings(text: str) -> list[Setting]:
    """``"cfg=5;cfg=5,pladis=2"`` → settings in order, duplicates removed (ValueError if none)."""
    settings = [parse_setting(part) for part in text.split(";") if part.strip()]
    if not settings:
        raise ValueError("--settings needs at least one setting, e.g. 'cfg=5;cfg=5,pladis=2'")
    return list(dict.fromkeys(settings))


def setting_of_record(record: dict[str, Any]) -> Setting:
    """The setting of an image from its sidecar (written by ``generate``, ``compare``, ``sweep
    --save-cells`` or ``benchmark``)."""
    if "setting" in record:
        return Setting(**record["setting"])
    sampling, guidance, pladis = record.get("sampling", {}), record.get("guidance", {}), record.get("pladis", {})
    on = bool(pladis.get("enabled", pladis.get("scale", 0.0)))
    cfg = sampling.get("guidance_scale")
    return Setting(cfg=None if cfg is None else float(cfg), pag=float(guidance.get("pag_scale", 0.0)),
                   seg=float(guidance.get("seg_scale", 0.0)),
                   pladis=float(pladis.get("scale", 0.0)) if on else 0.0,
                   alpha=float(pladis.get("alpha", _DEFAULT_ALPHA)) if on else _DEFAULT_ALPHA)
