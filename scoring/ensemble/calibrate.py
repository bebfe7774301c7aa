"""Compare scores with the user's own ratings: Spearman rank correlation per source and for
the ensemble, and a per-source linear calibration (least squares) onto the ratings' scale.

Ratings are a ratings.csv (`ratings.py`: `file,rating`, any numeric scale). They are mapped
to 0–100 by the scale (given, or the ratings' own min–max) before fitting
`rating ≈ slope · score + intercept`, so a calibrated score stays a 0–100 score. The JSON
`save_calibrations` writes is a profile without weights; `profile.load_profile` reads it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..core.atomic import write_text
from ..core.cards import CHECK, ScoreCard, Verdict, score_value
from . import ratings as ratings_csv

ENSEMBLE = "ensemble"
USER_DIR = "ComfyUI's user directory"
MAX_CALIBRATION_BYTES = 1 << 20
"""A calibration file (a profile) is a few lines of JSON: anything larger is not one."""


def load_ratings(path: str | Path) -> dict[str, float]:
    """file name → rating from a ratings.csv (`ratings.read`)."""
    return {r.file: r.rating for r in ratings_csv.read(path)}


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get the mean of the ranks they span (like scipy's 'average')."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    first = np.empty(len(s), dtype=bool)
    first[:1] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    mean = (starts + np.append(starts[1:], len(s)) + 1) / 2.0
    ranks = np.empty(len(a))
    ranks[order] = mean[np.cumsum(first) - 1]
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
        """A copy of `card` with its axis calibrated (other sources and axes untouched); the
        value before any calibration stays in `extras["uncalibrated"]` (what `learn` fits)."""
        if card.source != self.source or not card.ok or self.axis not in card.axes:
            return card
        raw = card.extras.get("uncalibrated")
        raw = dict(raw) if isinstance(raw, dict) else {}
        raw.setdefault(self.axis, card.axes[self.axis])
        return replace(card, axes={**card.axes, self.axis: self(card.axes[self.axis])},
                       extras={**card.extras, "uncalibrated": raw})


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
             else None if c.kind == CHECK else score_value(c.axes.get(axis)))
        if v is not None:
            per.setdefault(c.source, []).append(max(0.0, v))
    out = {src: float(statistics.median(vs)) for src, vs in sorted(per.items())}
    final = verdict.value(axis)
    if final is not None:
        out[ENSEMBLE] = final
    return out


def compare(rows: Sequence[tuple[str, Verdict]], ratings: dict[str, float],
            axis: str = "overall", scale: tuple[float, float] | None = None) -> list[SourceFit]:
    """Spearman and a linear calibration per source (and "ensemble", listed last)."""
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    given = [ratings_csv.Rating(name, value) for name, value in ratings.items()]
    for r, verdict in ratings_csv.match([(n, "", v) for n, v in rows], given):
        rating = r.rating
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
    return write_text(path, json.dumps(data, indent=1))


def apply_calibrations(cards: Sequence[ScoreCard], cals: Sequence[Calibration]
                       ) -> list[ScoreCard]:
    """Cards with every matching (source, axis) calibration applied."""
    out = list(cards)
    for cal in cals:
        out = [cal.apply(c) for c in out]
    return out
