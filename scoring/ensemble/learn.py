"""Learn a profile from one user's ratings, and measure it on images it was not fit on.

The profile (`profile.Profile`) is a per-source linear calibration onto the ratings' 0–100
scale (as `calibrate` fits it) plus ensemble weights: non-negative, fitted by least squares of
the calibrated sources' weighted mean against the ratings (projected gradient), shrunk toward
the default weights by λ·‖w − w₀‖², λ chosen by cross-validation inside the training folds.

It is judged by K-fold cross-validation: each fold's profile is fitted on the other folds and
applied to the fold's images through the real ensemble (`aggregate.combine`); the pooled
held-out values give Spearman's ρ against the ratings for each source (raw), the default
ensemble and the learned one, each with a paired bootstrap interval. The learned profile is
adopted only when its gain over the default has an interval entirely above zero; otherwise
the default stays and `more` says how many ratings would settle it if the gain holds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.cards import ScoreCard, score_value
from .aggregate import CHECK, AggregateSettings, combine
from .calibrate import Calibration, fit_linear, spearman
from .profile import Profile

MIN_RATED = 6
"""Fewer rated, scored images than this: nothing is learned (two held-out folds of 3)."""
MIN_FOLD = 8
"""Images per held-out fold at least (fewer folds for fewer ratings)."""
LAMBDAS = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, math.inf)
"""Shrinkage toward the default weights, relative to the mean source variance (∞: defaults)."""


@dataclass(frozen=True)
class Rated:
    """One rated image: the user's rating and every raw (uncalibrated) card behind it."""

    rating: float
    cards: list[ScoreCard]


@dataclass(frozen=True)
class Interval:
    """Spearman's ρ (or a gain in ρ) with its bootstrap interval, over `n` images."""

    value: float | None
    low: float | None
    high: float | None
    n: int


@dataclass
class Learned:
    """What `learn` found: held-out ρ per source, for the default and the learned ensemble,
    the gain, and the profile to use (the learned one only when adopted)."""

    n: int
    axis: str
    scale: tuple[float, float]
    level: float
    folds: int
    sources: dict[str, Interval]
    default: Interval
    learned: Interval
    gain: Interval
    adopted: bool
    fitted: Profile
    more: int | None
    """Ratings still needed for the gain's interval to clear zero, if the gain holds."""
    profile: Profile = field(init=False)

    def __post_init__(self) -> None:
        self.profile = self.fitted if self.adopted else Profile(axis=self.axis, fit=self.fitted.fit)


def rho(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's ρ over the pairs where x is a number; None below 3 pairs or if constant."""
    ok = ~np.isnan(x)
    return spearman(x, y) if ok.all() else spearman(x[ok], y[ok])


def uncalibrated(card: ScoreCard) -> ScoreCard:
    """The card as its source made it, before any calibration a report applied."""
    raw = card.extras.get("uncalibrated") if isinstance(card.extras, dict) else None
    if not isinstance(raw, dict):
        return card
    extras = {k: v for k, v in card.extras.items() if k != "uncalibrated"}
    return replace(card, axes={**card.axes, **raw}, extras=extras)


def _raw(card: ScoreCard, axis: str) -> float | None:
    return score_value(card.axes.get(axis))


def _table(rated: Sequence[Rated], sources: list[str], axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Each vote source's raw value per image (median over repeats, NaN when it has none)
    and each image's check penalty."""
    x = np.full((len(rated), len(sources)), np.nan)
    pen = np.zeros(len(rated))
    col = {s: j for j, s in enumerate(sources)}
    for i, r in enumerate(rated):
        per: dict[str, list[float]] = {}
        for c in r.cards:
            if c.ok and c.kind == CHECK and c.repeat == 0:
                pen[i] += max(0.0, float(c.penalty))
            elif c.ok and c.kind != CHECK and c.source in col and (v := _raw(c, axis)) is not None:
                per.setdefault(c.source, []).append(v)
        for s, vs in per.items():
            x[i, col[s]] = statistics.median(vs)
    return x, pen


def nnls_ridge(a: np.ndarray, y: np.ndarray, prior: np.ndarray, lam: float,
               iters: int = 3000) -> np.ndarray:
    """argmin over w ≥ 0 of ‖a·w − y‖²/n + lam·‖w − prior‖² (accelerated projected gradient)."""
    n = len(y)
    h = a.T @ a / n + lam * np.eye(a.shape[1])
    b = a.T @ y / n + lam * prior
    step = 1.0 / max(float(np.linalg.eigvalsh(h).max()), 1e-12)
    w = z = prior.copy()
    t = 1.0
    for _ in range(iters):
        nxt = np.maximum(0.0, z - step * (h @ z - b))
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = nxt + (t - 1) / t_next * (nxt - w)
        if np.abs(nxt - w).max() < 1e-7 * max(1.0, float(np.abs(nxt).max())):
            return nxt
        w, t = nxt, t_next
    return w


@dataclass
class _Fit:
    slope: np.ndarray
    intercept: np.ndarray
    weights: np.ndarray

    def calibrated(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x * self.slope + self.intercept, 0.0, 100.0)

    def predict(self, x: np.ndarray, pen: np.ndarray) -> np.ndarray:
        """The weighted mean of the calibrated sources present, less the penalty."""
        c = self.calibrated(x)
        w = np.where(np.isnan(c), 0.0, self.weights)
        total = w.sum(axis=1)
        mean = np.nansum(c * w, axis=1) / np.where(total > 0, total, 1.0)
        return np.where(total > 0, mean - pen, np.nan)


def _fit(x: np.ndarray, y: np.ndarray, pen: np.ndarray, prior: np.ndarray, lam: float) -> _Fit:
    """Calibrate each source onto y (+ penalty, which the ensemble takes off again), then
    fit the weights of the calibrated sources (a missing one counts as the row's mean)."""
    m = x.shape[1]
    target = y + pen
    slope, icpt = np.ones(m), np.zeros(m)
    for j in range(m):
        ok = ~np.isnan(x[:, j])
        line = fit_linear(x[ok, j], target[ok]) if ok.sum() >= 3 else None
        if line:
            slope[j], icpt[j] = line
    fit = _Fit(slope, icpt, prior.copy())
    if math.isinf(lam):
        return fit
    c = fit.calibrated(x)
    rows = ~np.isnan(c).all(axis=1)
    c, t = c[rows], target[rows]
    c = np.where(np.isnan(c), np.nanmean(c, axis=1, keepdims=True), c)
    scale = float(np.mean(np.var(c, axis=0))) or 1.0
    w = nnls_ridge(c, t, prior, lam * scale)
    fit.weights = w if w.sum() > 0 else prior.copy()
    return fit


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [f for f in np.array_split(rng.permutation(n), min(k, n)) if len(f)]


def _choose_lambda(x: np.ndarray, y: np.ndarray, pen: np.ndarray, prior: np.ndarray,
                   k: int, rng: np.random.Generator) -> float:
    """The λ whose fits predict held-out ratings best (ties: the larger λ)."""
    folds = _folds(len(y), k, rng)
    best, best_rho = math.inf, -math.inf
    for lam in sorted(LAMBDAS, reverse=True):
        pred = np.full(len(y), np.nan)
        for f in folds:
            train = np.setdiff1d(np.arange(len(y)), f)
            pred[f] = _fit(x[train], y[train], pen[train], prior, lam).predict(x[f], pen[f])
        r = rho(pred, y)
        if r is not None and r > best_rho + 1e-9:
            best, best_rho = lam, r
    return best


def _profile(fit: _Fit, sources: list[str], total: float, axis: str) -> Profile:
    """The fit as a profile, its weights summing to `total` (the defaults' sum, so a
    source the profile does not list keeps its weight's meaning)."""
    cals = [Calibration(s, axis, round(float(a), 6), round(float(b), 4))
            for s, a, b in zip(sources, fit.slope, fit.intercept, strict=True)
            if (a, b) != (1.0, 0.0)]
    w = fit.weights / fit.weights.sum() * total
    return Profile(cals, {s: round(float(v), 4) for s, v in zip(sources, w, strict=True)}, axis)


def _ensemble(cards: list[ScoreCard], profile: Profile, settings: AggregateSettings,
              axis: str) -> float:
    v = combine(profile.apply(cards), profile.settings(settings)).value(axis)
    return math.nan if v is None else v


def _held_out(y: np.ndarray, s: np.ndarray, folds: list[np.ndarray]) -> float | None:
    """The folds' ρ of `s` against y, averaged by fold size (each fold ranked on its own,
    so folds fitted apart are never ranked against each other)."""
    got = [(r, len(f)) for f in folds if (r := rho(s[f], y[f])) is not None]
    return sum(r * k for r, k in got) / sum(k for _, k in got) if got else None


def _bootstrap(y: np.ndarray, series: dict[str, np.ndarray], folds: list[np.ndarray],
               boot: int, rng: np.random.Generator, level: float) -> dict[str, Interval]:
    """Each series' held-out ρ with a percentile interval (images resampled within their
    fold), and "gain" = learned − default on the images both scored, paired."""
    both = ~np.isnan(series["default"]) & ~np.isnan(series["learned"])
    paired = {k: np.where(both, series[k], np.nan) for k in ("default", "learned")}

    def stats(ix: list[np.ndarray]) -> dict[str, float | None]:
        out = {k: _held_out(y, s, ix) for k, s in series.items()}
        d, lr = (_held_out(y, paired[k], ix) for k in ("default", "learned"))
        out["gain"] = None if d is None or lr is None else lr - d
        return out

    point = stats(folds)
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(boot):
        for k, v in stats([rng.choice(f, len(f)) for f in folds]).items():
            if v is not None:
                samples[k].append(v)
    q = ((1 - level) / 2 * 100, (1 + level) / 2 * 100)
    out = {}
    for k, v in point.items():
        n = int(both.sum()) if k == "gain" else int((~np.isnan(series[k])).sum())
        lo, hi = (float(x) for x in np.percentile(samples[k], q)) if len(samples[k]) >= 10 \
            else (None, None)
        out[k] = Interval(v, lo, hi, n)
    return out


def _more(gain: Interval) -> int | None:
    """Ratings to add so the gain's interval (shrinking as 1/√n) clears zero, if it holds."""
    if gain.value is None or gain.low is None or gain.high is None or gain.value <= 0:
        return None
    if gain.low > 0:
        return 0
    half = (gain.high - gain.low) / 2
    return max(1, math.ceil(gain.n * (half / gain.value) ** 2) - gain.n)


def learn(rated: Sequence[Rated], *, axis: str = "overall", scale: tuple[float, float],
          settings: AggregateSettings | None = None, folds: int = 5, boot: int = 1000,
          level: float = 0.95, seed: int = 0) -> Learned:
    """Fit a profile to `rated` and compare it with the default ensemble on held-out folds.
    Ratings are mapped to 0–100 by `scale` (low, high). ValueError with too few images."""
    settings = settings or AggregateSettings()
    rated = [Rated(r.rating, [uncalibrated(c) for c in r.cards]) for r in rated]
    lo, hi = scale
    if not hi > lo:
        raise ValueError(f"rating scale: high must exceed low (got {lo:g}, {hi:g})")
    sources = sorted({c.source for r in rated for c in r.cards if c.kind != CHECK and c.ok
                      and _raw(c, axis) is not None})
    default = np.array([_ensemble(r.cards, Profile(), settings, axis) for r in rated])
    keep = [i for i, r in enumerate(rated) if not math.isnan(default[i])]
    if not sources:
        raise ValueError(f"no source but a technical check scores {axis} in these images: "
                         "there are no weights to learn (add a source that scores it: cl, a "
                         "VLM, the judge)")
    if len(keep) < MIN_RATED:
        raise ValueError(f"{len(keep)} rated images have a score on {axis}; learning needs at "
                         f"least {MIN_RATED}")
    rated = [rated[i] for i in keep]
    default = default[keep]
    y = np.array([(r.rating - lo) / (hi - lo) * 100.0 for r in rated])
    x, pen = _table(rated, sources, axis)
    weight = {c.source: settings.weight(c) for r in rated for c in r.cards}
    raw = np.array([weight[s] for s in sources], dtype=float)
    total = float(raw.sum()) or float(len(sources))
    prior = raw / raw.sum() if raw.sum() > 0 else np.full(len(sources), 1 / len(sources))
    rng = np.random.default_rng(seed)

    learned = np.full(len(rated), np.nan)
    outer = _folds(len(rated), max(2, min(folds, len(rated) // MIN_FOLD)), rng)
    for f in outer:
        train = np.setdiff1d(np.arange(len(rated)), f)
        lam = _choose_lambda(x[train], y[train], pen[train], prior, folds, rng)
        fit = _fit(x[train], y[train], pen[train], prior, lam)
        prof = _profile(fit, sources, total, axis)
        learned[f] = [_ensemble(rated[i].cards, prof, settings, axis) for i in f]
    series = {"default": default, "learned": learned,
              **{f"source:{s}": x[:, j] for j, s in enumerate(sources)}}
    stats = _bootstrap(y, series, outer, boot, rng, level)
    gain = stats["gain"]
    adopted = gain.low is not None and gain.low > 0

    lam = _choose_lambda(x, y, pen, prior, folds, rng)
    fitted = _profile(_fit(x, y, pen, prior, lam), sources, total, axis)
    fitted.fit = {"n": len(rated), "default": stats["default"].value,
                  "learned": stats["learned"].value, "gain_low": gain.low,
                  "gain_high": gain.high, "adopted": adopted,
                  "lambda": None if math.isinf(lam) else lam, "scale": [lo, hi]}
    fitted.fit = {k: v for k, v in fitted.fit.items() if v is not None}
    return Learned(len(rated), axis, (lo, hi), level, len(outer),
                   {s: stats[f"source:{s}"] for s in sources}, stats["default"],
                   stats["learned"], gain, adopted, fitted, _more(gain))
