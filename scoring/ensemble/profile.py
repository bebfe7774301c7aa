"""A profile: what `learn` fitted to one user's ratings, applied before the ensemble combines.

A small versioned JSON, read by the Aggregate node's `calibration` input and the CLI's
`--calibration`::

    {"saiten_profile": 1, "axis": "overall",
     "calibrations": [{"source": "wd", "axis": "overall", "slope": 0.9, "intercept": 4.2}],
     "weights": {"wd": 0.7, "aesthetic": 1.3},
     "fit": {"n": 80, "default": 0.41, "learned": 0.55, "adopted": true}}

`calibrations` map each source's score onto the ratings' 0–100 scale (as `calibrate` fits
them); `weights` replace the sources' default weights in the ensemble (explicit `weights`
given to the node or CLI still win); `fit` records what `learn` measured. The bare list that
`calibrate --out` writes is a profile without weights (version 0). Everything is validated on
load: size, types, finite numbers in range, known keys; an error names the file and the field,
never quoting its content.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.atomic import write_text
from ..core.cards import ScoreCard
from ..core.paths import confined
from .aggregate import AggregateSettings
from .calibrate import MAX_CALIBRATION_BYTES, USER_DIR, Calibration, apply_calibrations

KEY = "saiten_profile"
VERSION = 1
MAX_ENTRIES = 64
MAX_LABEL = 128
MAX_SLOPE = 100.0
MAX_INTERCEPT = 1000.0
MAX_WEIGHT = 1000.0


@dataclass
class Profile:
    """Calibrations and ensemble weights fitted to one user's ratings."""

    calibrations: list[Calibration] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    axis: str = "overall"
    fit: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    @property
    def empty(self) -> bool:
        """Nothing to apply: the default ensemble."""
        return not self.calibrations and not self.weights

    def apply(self, cards: Sequence[ScoreCard]) -> list[ScoreCard]:
        """One image's cards with the calibrations applied."""
        return apply_calibrations(cards, self.calibrations)

    def settings(self, base: AggregateSettings | None = None) -> AggregateSettings:
        """`base` with the profile's weights under its own explicit ones."""
        base = base or AggregateSettings()
        return replace(base, weights={**self.weights, **base.weights})

    def to_dict(self) -> dict[str, Any]:
        return {KEY: VERSION, "axis": self.axis,
                "calibrations": [asdict(c) for c in self.calibrations],
                "weights": dict(self.weights), "fit": dict(self.fit)}

    def describe(self) -> str:
        """One line for a node or a log: what the profile changes."""
        parts = []
        if self.calibrations:
            fits = ", ".join(f"{c.source}.{c.axis}" for c in self.calibrations)
            parts.append(f"calibrated ({fits})")
        if self.weights:
            parts.append("weights " + ", ".join(f"{k} {v:.2f}" for k, v in self.weights.items()))
        return "; ".join(parts) or "the defaults (nothing learned)"


def _number(d: dict, key: str, limit: float) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or abs(v) > limit:
        raise ValueError(f"{key} must be a finite number within ±{limit:g}")
    return float(v)


def _label(v: Any, what: str) -> str:
    if not (isinstance(v, str) and 0 < len(v) <= MAX_LABEL and v.isprintable()):
        raise ValueError(f"{what} must be a name of 1–{MAX_LABEL} printable characters")
    return v


def _calibration(d: Any) -> Calibration:
    if not (isinstance(d, dict) and set(d) == {"source", "axis", "slope", "intercept"}):
        raise ValueError("expected {source, axis, slope, intercept}")
    return Calibration(_label(d["source"], "source"), _label(d["axis"], "axis"),
                       _number(d, "slope", MAX_SLOPE), _number(d, "intercept", MAX_INTERCEPT))


def _finite(v: Any, limit: float = MAX_WEIGHT) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) \
        and abs(v) <= limit


FIT_KEYS: dict[str, Any] = {
    "n": lambda v: v if isinstance(v, int) and _finite(v, 1e9) and v >= 0 else None,
    "adopted": lambda v: v if isinstance(v, bool) else None,
    "scale": lambda v: [float(x) for x in v] if isinstance(v, list) and len(v) == 2
    and all(map(_finite, v)) else None,
    **dict.fromkeys(("default", "learned", "gain_low", "gain_high", "lambda"),
                    lambda v: float(v) if _finite(v) else None),
}
"""What `learn` records in `fit`: each key's check (None: dropped)."""


def _fit(d: Any) -> dict[str, Any]:
    """What `learn` measured: known keys of the right type only, anything else dropped."""
    if not isinstance(d, dict):
        raise ValueError("fit must be an object")
    checked = {k: f(d.get(k)) for k, f in FIT_KEYS.items()}
    return {k: v for k, v in checked.items() if v is not None}


def parse_profile(data: Any) -> Profile:
    """A Profile from decoded JSON (a v1 object, or `calibrate`'s bare list); ValueError
    naming the field otherwise."""
    if isinstance(data, list):
        entries, weights, axis, fit, version = data, {}, "overall", {}, 0
    elif isinstance(data, dict) and KEY in data:
        version = data[KEY]
        if version != VERSION or isinstance(version, bool):
            raise ValueError(f"version {version!r} is not one this Saiten reads "
                             f"({VERSION}); update the pack or rerun learn")
        unknown = set(data) - {KEY, "axis", "calibrations", "weights", "fit"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]}")
        entries, weights = data.get("calibrations", []), data.get("weights", {})
        axis = _label(data.get("axis", "overall"), "axis")
        fit = _fit(data.get("fit", {}))
    else:
        raise ValueError("expected a list of {source, axis, slope, intercept} or a profile "
                         f"object ({{\"{KEY}\": {VERSION}, …}})")
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise ValueError(f"calibrations must be a list of at most {MAX_ENTRIES}")
    if not isinstance(weights, dict) or len(weights) > MAX_ENTRIES:
        raise ValueError(f"weights must be an object of at most {MAX_ENTRIES} sources")
    cals = []
    for n, d in enumerate(entries, 1):
        try:
            cals.append(_calibration(d))
        except ValueError as e:
            raise ValueError(f"entry {n} is not {{source, axis, slope, intercept}}: {e}"
                             ) from None
    checked: dict[str, float] = {}
    for k, v in weights.items():
        source = _label(k, "a weight's source")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or not 0 <= v <= MAX_WEIGHT:
            raise ValueError(f"weight of {source}: must be a number from 0 to {MAX_WEIGHT:g}")
        checked[source] = float(v)
    return Profile(cals, checked, axis, fit, version)


def load_profile(path: str | Path) -> Profile:
    """The profile in `path`; ValueError names the file and the problem, never quoting what
    the file holds (OSError when it cannot be read)."""
    path = Path(path)
    name = path.name
    if path.stat().st_size > MAX_CALIBRATION_BYTES:
        raise ValueError(f"{name}: larger than {MAX_CALIBRATION_BYTES // 1024} KiB; "
                         "not a calibration file")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not calibration JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not calibration JSON (line {e.lineno}, column {e.colno})"
                         ) from None
    except RecursionError:
        raise ValueError(f"{name}: not calibration JSON (nested too deep)") from None
    try:
        return parse_profile(data)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def load_confined_profile(name: str, root: str | Path) -> Profile:
    """`load_profile` of `name` under `root` (relative, no `..`, no symlink out); every
    problem is a ValueError quoting neither the file nor anything outside `root`."""
    path = confined(name, root, what="calibration file", where=USER_DIR)
    try:
        return load_profile(path)
    except OSError as e:
        raise ValueError(f"calibration file {name.strip()}: cannot read it "
                         f"({e.strerror or type(e).__name__})") from None
    except ValueError as e:
        raise ValueError(f"calibration file {e}") from None


def save_profile(path: str | Path, profile: Profile) -> Path:
    """The profile as JSON at `path`, written atomically; what `load_profile` reads back."""
    return write_text(path, json.dumps(profile.to_dict(), indent=1, ensure_ascii=False)
                        + "\n")
