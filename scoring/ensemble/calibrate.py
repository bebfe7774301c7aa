"""Compare scores with the user's own ratings: Spearman rank correlation per source and for
the ensemble, and a per-source linear calibration (least squares) onto the ratings' scale.

Ratings are a CSV of `file,rating` (a header row is optional; any numeric scale). They are
mapped to 0–100 by the scale (given, or the ratings' own min–max) before fitting
`rating ≈ slope · score + intercept`, so a calibrated score stays a 0–100 score.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..core.cards import CHECK, ScoreCard, Verdict, clamp_score
from ..core.paths import confined

ENSEMBLE = "ensemble"
MAX_CALIBRATION_BYTES = 1 << 20
USER_DIR = "ComfyUI's user directory"
"""A calibration file is a few lines of JSON: anything larger is not one."""


def load_ratings(path: str | Path) -> dict[str, float]:
    """file name → rating from a CSV `file,rating` (header optional, extra columns ignored)."""
    ratings: dict[str, float] = {}
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{Path(path).name}:{n}: expected 'file,rating', got {row!r}")
            name, value, where = row[0].strip(), row[1].strip(), f"{Path(path).name}:{n}"
            try:
                rating = float(value)
            except ValueError:
                if n == 1:  # a header row
                    continue
                raise ValueError(f"{where}: rating {value!r} is not a number") from None
            if not np.isfinite(rating):
                raise ValueError(f"{where}: rating {value!r} is not finite")
            ratings[name] = rating
    return ratings


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get the mean of the ranks they span (like scipy's 'average')."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sorted_a = a[order]
    start = 0
    for end in range(1, len(a) + 1):
        if end == len(a) or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation, or None with fewer than 3 pairs or a constant side."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} values vs {len(y)}")
    if len(x) < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return None if denom == 0 else float((rx * ry).sum() / denom)


@dataclass
class Calibration:
    """calibrated = clamp(slope · score + intercept) on one axis of one source."""

    source: str
    axis: str
    slope: float
    intercept: float

    def __call__(self, value: float) -> float:
        return min(100.0, max(0.0, self.slope * value + self.intercept))

    def apply(self, card: ScoreCard) -> ScoreCard:
        """A copy of `card` with its axis calibrated (other sources and axes untouched)."""
        if card.source != self.source or not card.ok or self.axis not in card.axes:
            return card
        return replace(card, axes={**card.axes, self.axis: self(card.axes[self.axis])})


@dataclass
class SourceFit:
    """How one source (or the ensemble) agrees with the ratings on one axis."""

    source: str
    axis: str
    n: int
    spearman: float | None
    calibration: Calibration | None


def fit_linear(scores: Sequence[float], targets: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) of targets on scores; None if under-determined."""
    s = np.asarray(scores, dtype=float)
    if len(s) < 3 or np.ptp(s) == 0:
        return None
    a = np.stack([s, np.ones_like(s)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(a, np.asarray(targets, dtype=float), rcond=None)
    return float(slope), float(intercept)


def source_values(verdict: Verdict, axis: str = "overall") -> dict[str, float]:
    """Each source's value on `axis` (median over its repeats), a check's `100 − penalty`
    standing for `overall`, and the ensemble's final value."""
    per: dict[str, list[float]] = {}
    for c in verdict.cards:
        if not c.ok:
            continue
        v = (100.0 - c.penalty if c.kind == CHECK and axis == "overall"
             else None if c.kind == CHECK else clamp_score(c.axes.get(axis)))
        if v is not None:
            per.setdefault(c.source, []).append(max(0.0, v))
    out = {src: float(statistics.median(vs)) for src, vs in sorted(per.items())}
    final = verdict.value(axis)
    if final is not None:
        out[ENSEMBLE] = final
    return out


def _match(name: str, ratings: dict[str, float]) -> float | None:
    """The rating for a report's file name: exact, then by base name, then by stem."""
    if name in ratings:
        return ratings[name]
    p = Path(name)
    for key, value in ratings.items():
        k = Path(key)
        if k.name == p.name or (k.suffix == "" and k.name == p.stem):
            return value
    return None


def compare(rows: Sequence[tuple[str, Verdict]], ratings: dict[str, float],
            axis: str = "overall", scale: tuple[float, float] | None = None) -> list[SourceFit]:
    """Spearman and a linear calibration per source (and "ensemble", listed last)."""
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    for name, verdict in rows:
        rating = _match(name, ratings)
        if rating is None:
            continue
        for src, value in source_values(verdict, axis).items():
            xs, ys = pairs.setdefault(src, ([], []))
            xs.append(value)
            ys.append(rating)
    lo, hi = scale or (min(ratings.values(), default=0.0), max(ratings.values(), default=0.0))
    fits = []
    for src in sorted(pairs, key=lambda s: (s == ENSEMBLE, s)):
        xs, ys = pairs[src]
        cal = None
        if hi > lo:
            line = fit_linear(xs, [(y - lo) / (hi - lo) * 100.0 for y in ys])
            if line and src != ENSEMBLE:
                cal = Calibration(src, axis, *line)
        fits.append(SourceFit(src, axis, len(xs), spearman(xs, ys), cal))
    return fits


def save_calibrations(path: str | Path, fits: Sequence[SourceFit]) -> Path:
    """The calibrations as JSON (a list of {source, axis, slope, intercept})."""
    path = Path(path)
    data = [asdict(f.calibration) for f in fits if f.calibration]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def load_calibrations(path: str | Path) -> list[Calibration]:
    """The calibrations `save_calibrations` wrote; ValueError names the file and the problem,
    never quoting what the file holds (OSError when it cannot be read)."""
    path = Path(path)
    name = path.name
    if path.stat().st_size > MAX_CALIBRATION_BYTES:
        raise ValueError(f"{name}: larger than {MAX_CALIBRATION_BYTES // 1024} KiB; "
                         "not a calibration file")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not calibration JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not calibration JSON (line {e.lineno}, column {e.colno})"
                         ) from None
    if not isinstance(data, list):
        raise ValueError(f"{name}: expected a list of {{source, axis, slope, intercept}}")
    cals = []
    for n, d in enumerate(data, 1):
        ok = (isinstance(d, dict) and set(d) == {"source", "axis", "slope", "intercept"}
              and isinstance(d["source"], str) and isinstance(d["axis"], str)
              and all(isinstance(d[k], int | float) and not isinstance(d[k], bool)
                      and np.isfinite(d[k]) for k in ("slope", "intercept")))
        if not ok:
            raise ValueError(f"{name}: entry {n} is not {{source, axis, slope, intercept}} "
                             "with finite numbers")
        cals.append(Calibration(d["source"], d["axis"], float(d["slope"]),
                                float(d["intercept"])))
    return cals


def load_confined(name: str, root: str | Path) -> list[Calibration]:
    """`load_calibrations` of `confined(name, root)`; every problem is a ValueError that
    quotes neither the file's content nor anything outside `root`."""
    path = confined(name, root, what="calibration file", where=USER_DIR)
    try:
        return load_calibrations(path)
    except OSError as e:
        raise ValueError(f"calibration file {name.strip()}: cannot read it "
                         f"({e.strerror or type(e).__name__})") from None
    except ValueError as e:
        raise ValueError(f"calibration file {e}") from None


def apply_calibrations(cards: Sequence[ScoreCard], cals: Sequence[Calibration]
                       ) -> list[ScoreCard]:
    """Cards with every matching (source, axis) calibration applied."""
    out = list(cards)
    for cal in cals:
        out = [cal.apply(c) for c in out]
    return out
