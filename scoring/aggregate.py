"""The ensemble: many sources' cards for one image → one Verdict (SPEC "Aggregation").

Per axis, over the vote cards (ok cards whose kind is not "check") that scored it: median m,
MAD = median |v − m| floored at `mad_floor`; values with |v − m| ≤ k·MAD are kept and
averaged with per-source weights. Check cards (the technical check) never vote: their
`penalty` comes off `overall`. An abstaining source is absent, never 0. Fewer than
`min_sources` distinct sources with an ok card → the image is unscored. Repeated runs
(`card.repeat`) are combined per repeat, then the median of the per-repeat finals is taken.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from .cards import AXES, ScoreCard, Sheet, Verdict, clamp_score

CHECK = "check"


@dataclass
class AggregateSettings:
    """Knobs of the ensemble; `weights` (source label → weight) override `card.weight`."""

    k: float = 2.5
    min_sources: int = 2
    mad_floor: float = 1.0
    spread_scale: float = 40.0
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.k > 0 and self.mad_floor >= 0 and self.spread_scale > 0
                and self.min_sources >= 1):
            raise ValueError("aggregate settings: need k > 0, mad_floor ≥ 0, spread_scale > 0 "
                             f"and min_sources ≥ 1 (got k={self.k}, mad_floor={self.mad_floor}, "
                             f"spread_scale={self.spread_scale}, min_sources={self.min_sources})")

    def weight(self, card: ScoreCard) -> float:
        w = self.weights.get(card.source, card.weight)
        return w if math.isfinite(w) and w > 0 else 0.0


_PAIR = re.compile(r"^\s*([^=:\s][^=:]*?)\s*[=:]\s*([^\s]+)\s*$")


def parse_weights(text: str) -> dict[str, float]:
    """"wd=0.8, grok=1.1" (commas, semicolons or newlines between pairs) → {"wd": 0.8, ...}."""
    weights: dict[str, float] = {}
    for part in re.split(r"[,;\n]", text or ""):
        if not part.strip():
            continue
        m = _PAIR.match(part)
        value = None
        if m:
            try:
                value = float(m.group(2))
            except ValueError:
                value = None
        if m is None or value is None or not math.isfinite(value) or value < 0:
            raise ValueError(f"weights: cannot read {part.strip()!r}; write source=number pairs "
                             "(number ≥ 0) separated by commas, e.g. 'wd=0.8, grok=1.1'")
        weights[m.group(1)] = value
    return weights


@dataclass
class _Axis:
    value: float
    confidence: float
    kept: list[str]
    outliers: dict[str, str]


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def _combine_axis(axis: str, votes: list[tuple[str, float, float]], expected: int,
                  s: AggregateSettings) -> _Axis:
    """votes: (source, value, weight); robust weighted mean and its confidence."""
    m = _median(v for _, v, _ in votes)
    mad = max(_median(abs(v - m) for _, v, _ in votes), s.mad_floor)
    # with k < 1 nothing may be close enough: then the values nearest the median stay
    limit = max(s.k * mad, min(abs(v - m) for _, v, _ in votes))
    kept = [(src, v, w) for src, v, w in votes if abs(v - m) <= limit]
    outliers = {src: f"outlier on {axis} ({v:.4g} vs median {m:.4g})"
                for src, v, _ in votes if abs(v - m) > limit}
    total = sum(w for _, _, w in kept)
    if total > 0:
        value = sum(v * w for _, v, w in kept) / total
    else:  # every kept source has weight 0: fall back to the plain mean
        value = sum(v for _, v, _ in kept) / len(kept)
    values = [v for _, v, _ in kept]
    spread = max(values) - min(values)
    agreement = max(0.0, 1.0 - spread / s.spread_scale)
    confidence = agreement * min(1.0, len(kept) / max(expected, 1))
    return _Axis(value, confidence, [src for src, _, _ in kept], outliers)


def _order(cards: list[ScoreCard]) -> list[ScoreCard]:
    """A canonical order so the verdict never depends on the order cards arrived in."""
    return sorted(cards, key=lambda c: (c.source, c.repeat, c.abstained is not None))


def _pick(cards: list[ScoreCard], r: int) -> list[ScoreCard]:
    """Each source's card for repeat r, else its lowest-repeat card (deterministic sources)."""
    chosen: dict[str, ScoreCard] = {}
    for c in cards:  # canonical order: lowest repeat first, ok before abstained
        have = chosen.get(c.source)
        if have is None or (have.repeat != r and c.repeat == r):
            chosen[c.source] = c
    return list(chosen.values())


def _unscored(cards: list[ScoreCard], ok: list[str], s: AggregateSettings) -> Verdict:
    if not cards:
        reason = "no source scored this image"
    else:
        reason = f"{len(ok)} of {s.min_sources} required sources scored"
        reason += f" ({', '.join(ok)})" if ok else ""
    dropped = _abstentions(cards, ok)
    reason += "".join(f"; {src} abstained: {why}" for src, why in dropped.items())
    return Verdict(axes=dict.fromkeys(_axes(cards)), confidence=0.0, used=[], dropped=dropped,
                   cards=list(cards), unscored=reason)


def _abstentions(cards: list[ScoreCard], ok: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in _order(cards):
        if not c.ok and c.source not in ok and c.source not in out:
            out[c.source] = c.abstained or "abstained"
    return out


def _axes(cards: list[ScoreCard]) -> list[str]:
    """The rubric's axes, then any extra axis a vote card scored (custom rubrics)."""
    extra = sorted({a for c in cards if c.kind != CHECK for a in c.axes} - set(AXES))
    return [*AXES, *extra]


def combine(cards: list[ScoreCard], settings: AggregateSettings | None = None) -> Verdict:
    """The ensemble's verdict for one image from every card any source made for it."""
    s = settings or AggregateSettings()
    ordered = _order(list(cards))
    ok = sorted({c.source for c in ordered if c.ok})
    if len(ok) < s.min_sources:
        return _unscored(list(cards), ok, s)

    axes = _axes(ordered)
    expected = {a: len({c.source for c in ordered if c.kind != CHECK and a in c.provides})
                for a in axes}
    repeats = sorted({c.repeat for c in ordered})
    finals: dict[str, list[float]] = {a: [] for a in axes}
    confs: dict[str, list[float]] = {a: [] for a in axes}
    used: set[str] = set()
    dropped: dict[str, str] = {}
    voted_overall = any(c.ok and c.kind != CHECK and clamp_score(c.axes.get("overall")) is not None
                        for c in ordered)

    for r in repeats:
        picked = _pick(ordered, r)
        checks = [c for c in picked if c.kind == CHECK and c.ok]
        penalty = sum(max(0.0, float(c.penalty)) for c in checks)
        used.update(c.source for c in checks)
        tag = f" in repeat {r}" if len(repeats) > 1 else ""
        for c in picked:
            if not c.ok and c.source in ok:
                dropped.setdefault(c.source, f"abstained{tag}: {c.abstained}")
        votes = [c for c in picked if c.ok and c.kind != CHECK]
        for a in axes:
            vals = [(c.source, v, s.weight(c)) for c in votes
                    if (v := clamp_score(c.axes.get(a))) is not None]
            if not vals:
                continue
            res = _combine_axis(a, vals, expected[a], s)
            used.update(res.kept)
            for src, why in res.outliers.items():
                dropped[src] = f"{dropped[src]}; {why}{tag}" if src in dropped else why + tag
            value = res.value - penalty if a == "overall" else res.value
            finals[a].append(value)
            confs[a].append(res.confidence)
        if checks and not voted_overall:
            finals["overall"].append(100.0 - penalty)  # technically fine, nothing else known

    result = {a: (min(100.0, max(0.0, _median(v))) if v else None) for a, v in finals.items()}
    axis_conf = [_median(c) for c in confs.values() if c]  # a check-only overall has no votes
    dropped = {**_abstentions(ordered, ok), **dropped}
    verdict = Verdict(
        axes=result,
        confidence=sum(axis_conf) / len(axis_conf) if axis_conf else 0.0,
        used=sorted(used),
        dropped=dict(sorted(dropped.items())),
        cards=list(cards),
        comment=_comment(ordered, s),
    )
    if all(v is None for v in result.values()):
        verdict.unscored = f"{', '.join(ok)} answered but scored no axis"
        verdict.confidence = 0.0
    return verdict


def _comment(cards: list[ScoreCard], s: AggregateSettings) -> str:
    """The comment of the highest-weight ok vote card that has one."""
    best = max((c for c in cards if c.ok and c.kind != CHECK and c.comment.strip()),
               key=lambda c: (s.weight(c), -c.repeat), default=None)
    return best.comment.strip() if best else ""


def combine_sheet(sheet: Sheet, settings: AggregateSettings | None = None) -> list[Verdict]:
    """One verdict per image of the batch."""
    return [combine(cards, settings) for cards in sheet]
