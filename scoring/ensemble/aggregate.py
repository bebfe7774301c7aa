"""The ensemble: many sources' cards for one image → one Verdict (SPEC "Aggregation").

Per axis, over the vote cards (ok cards whose kind is not "check") that scored it: median m,
MAD = median |v − m| floored at `mad_floor`; values with |v − m| ≤ k·MAD are kept and
averaged with per-source weights. An abstaining source is absent, never 0. Fewer than
`min_sources` distinct sources with an ok card that votes or checks → the image is unscored
(the publish check, which votes on no axis, never makes up the number). Repeated runs
(`card.repeat`) are combined per repeat, then the median of the per-repeat finals is taken.

Never fail open: an axis takes its value only from the sources that vote on it. The sources
*expected* on an axis are those whose cards provide it, abstentions included; when every one
of them abstained (or answered without that axis) the axis is unscored — listed in
`verdict.missing` with who and why — and an unscored `overall` leaves the image without a
score. Check cards (the technical check) never vote: their `penalty` comes off `overall`.
Only where no vote card provides `overall` at all (NudeNet + technical check, the offline
default) is `overall` the check's own 100 − penalty: "technically fine, nothing else known".

Confidence per axis = agreement · coverage · the sources' own confidence: agreement is
1 − spread/`spread_scale` over the kept values (a lone vote: `SINGLE_AGREEMENT`), coverage
kept / expected voters, own the weighted mean of the kept cards' `confidence` (a logprob or
G-Eval spread; 1 when a card gives none). The verdict's confidence is the mean over the axes,
a missing axis counting 0; an unscored image has confidence 0. The `likeness` axis (CCIP
against the user's references) is combined like any axis when a source provides it, but it
is no part of the score: neither of `overall` nor of the verdict's confidence.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.cards import AXES, BROKEN, CHECK, LIKENESS, ScoreCard, Sheet, Verdict, score_value

SETTINGS = "aggregate settings"
SINGLE_AGREEMENT = 0.5
"""The agreement a lone vote on an axis counts as: nobody confirmed it."""


@dataclass
class AggregateSettings:
    """Knobs of the ensemble; `weights` (source label → weight) override `card.weight`."""

    k: float = 2.5
    min_sources: int = 2
    mad_floor: float = 1.0
    spread_scale: float = 40.0
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The one check of these settings (the node and the CLI both build them here)."""
        for problem, bad in (("k must be positive", not self.k > 0),
                             ("min_sources must be at least 1", not self.min_sources >= 1),
                             ("mad_floor must not be negative", not self.mad_floor >= 0),
                             ("spread_scale must be positive", not self.spread_scale > 0)):
            if bad:
                raise ValueError(f"{SETTINGS}: {problem}")

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


@dataclass
class _Vote:
    source: str
    value: float
    weight: float
    confidence: float


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def _own_confidence(card: ScoreCard) -> float:
    """The source's own confidence in its card (a logprob spread, a G-Eval spread): 0–1,
    1 when it gives none, 0 when it gives something that is not a number."""
    if card.confidence is None:
        return 1.0
    try:
        c = float(card.confidence)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, c)) if math.isfinite(c) else 0.0


def _combine_axis(axis: str, votes: list[_Vote], expected: int, s: AggregateSettings) -> _Axis:
    """Robust weighted mean of one axis's votes and its confidence."""
    m = _median(v.value for v in votes)
    mad = max(_median(abs(v.value - m) for v in votes), s.mad_floor)
    # with k < 1 nothing may be close enough: then the values nearest the median stay
    limit = max(s.k * mad, min(abs(v.value - m) for v in votes))
    kept = [v for v in votes if abs(v.value - m) <= limit]
    outliers = {v.source: f"outlier on {axis} ({v.value:.4g} vs median {m:.4g})"
                for v in votes if abs(v.value - m) > limit}
    total = sum(v.weight for v in kept)
    if total > 0:
        value = sum(v.value * v.weight for v in kept) / total
        own = sum(v.confidence * v.weight for v in kept) / total
    else:  # every kept source has weight 0: fall back to the plain mean
        value = statistics.fmean(v.value for v in kept)
        own = statistics.fmean(v.confidence for v in kept)
    return _Axis(value, _confidence([v.value for v in kept], expected, own, s),
                 [v.source for v in kept], outliers)


def _confidence(kept: list[float], expected: int, own: float, s: AggregateSettings) -> float:
    """agreement · coverage · the sources' own confidence. One voice has no one to agree
    with: its agreement is `SINGLE_AGREEMENT`, so a single source never yields 1.00."""
    agreement = (max(0.0, 1.0 - (max(kept) - min(kept)) / s.spread_scale) if len(kept) > 1
                 else SINGLE_AGREEMENT)
    return agreement * min(1.0, len(kept) / max(expected, 1)) * own


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


def _counts(card: ScoreCard) -> bool:
    """Whether an ok card counts towards `min_sources`: it votes on an axis or checks."""
    return card.kind == CHECK or bool(card.provides) or bool(card.axes)


def _unscored(cards: list[ScoreCard], ok: list[str], s: AggregateSettings) -> Verdict:
    if not cards:
        reason = "no source scored this image"
    else:
        reason = f"{len(ok)} of {s.min_sources} required sources scored"
        reason += f" ({', '.join(ok)})" if ok else ""
    dropped = _abstentions(cards, ok)
    reason += "".join(f"; {src} abstained: {why}" for src, why in dropped.items())
    return Verdict(axes=dict.fromkeys(AXES), confidence=0.0, used=[], dropped=dropped,
                   cards=list(cards), unscored=reason)


def _abstentions(cards: list[ScoreCard], ok: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in _order(cards):
        if not c.ok and c.source not in ok and c.source not in out:
            out[c.source] = c.abstained or "abstained"
    return out


def _voters(cards: list[ScoreCard], axes: list[str]) -> dict[str, list[str]]:
    """Per axis, the sources expected to vote on it: every vote card that provides or scored
    it, abstentions included. Where no vote card provides `overall`, the check sources stand
    in for it (a technical-only `overall`: 100 − penalty)."""
    out = {a: sorted({c.source for c in cards if c.kind != CHECK
                      and (a in c.provides or (c.ok and a in c.axes))}) for a in axes}
    if not out["overall"]:
        out["overall"] = sorted({c.source for c in cards if c.kind == CHECK})
    return out


def _why_missing(cards: list[ScoreCard], axis: str, sources: list[str]) -> str:
    """Why none of `sources` has a value on `axis`: each one's abstention, or that it
    answered without that axis."""
    why: dict[str, str] = {}
    for c in cards:
        if c.source in sources and c.source not in why:
            why[c.source] = (f"abstained: {c.abstained}" if not c.ok else _no_value(c, axis))
    return "; ".join(f"{src} {w}" for src, w in why.items())


def _no_value(card: ScoreCard, axis: str) -> str:
    """Why an answering card has no vote on `axis`: the invalid value its source read (a
    number out of range, not a number), the value it holds, or none at all."""
    bad = (card.extras.get("invalid") or {}).get(axis)
    if bad:
        return f"gave no valid {axis} ({bad})"
    if axis in card.axes:
        return f"gave {axis} {card.axes[axis]!r}, not a score in 0–100"
    return f"answered without {axis}"


def combine(cards: list[ScoreCard], settings: AggregateSettings | None = None) -> Verdict:
    """The ensemble's verdict for one image from every card any source made for it; a
    check that found the frame broken (`BROKEN`) leaves it unscored, saying why."""
    verdict = _combine(cards, settings or AggregateSettings())
    broken = next((c for c in cards if c.ok and c.kind == CHECK and c.extras.get(BROKEN)),
                  None)
    if broken is not None:
        verdict.unscored, verdict.confidence = f"{broken.source}: {broken.extras[BROKEN]}", 0.0
    return verdict


def _combine(cards: list[ScoreCard], s: AggregateSettings) -> Verdict:
    ordered = _order(list(cards))
    ok = sorted({c.source for c in ordered if c.ok and _counts(c)})
    if len(ok) < s.min_sources:
        return _unscored(list(cards), ok, s)

    axes = [*AXES, *([LIKENESS] if any(LIKENESS in c.provides for c in ordered) else [])]
    voters = _voters(ordered, axes)
    technical_only = all(c.kind == CHECK for c in ordered if c.source in voters["overall"])
    repeats = sorted({c.repeat for c in ordered})
    finals: dict[str, list[float]] = {a: [] for a in axes}
    confs: dict[str, list[float]] = {a: [] for a in axes}
    used: set[str] = set()
    dropped: dict[str, str] = {}

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
            if a == "overall" and technical_only:
                if checks:  # nothing in the graph scores overall: technically fine is all
                    finals[a].append(100.0 - penalty)
                    confs[a].append(_confidence([100.0 - penalty], len(voters[a]), 1.0, s))
                continue
            vals = [_Vote(c.source, v, s.weight(c), _own_confidence(c)) for c in votes
                    if (v := score_value(c.axes.get(a))) is not None]
            if not vals:
                continue
            res = _combine_axis(a, vals, len(voters[a]), s)
            used.update(res.kept)
            for src, why in res.outliers.items():
                dropped[src] = f"{dropped[src]}; {why}{tag}" if src in dropped else why + tag
            finals[a].append(res.value - penalty if a == "overall" else res.value)
            confs[a].append(res.confidence)

    result = {a: (min(100.0, max(0.0, _median(v))) if v else None) for a, v in finals.items()}
    missing = {a: _why_missing(ordered, a, voters[a]) for a in axes
               if voters[a] and result[a] is None}
    confidences = {a: _median(c) for a, c in confs.items() if c}
    # an axis whose every expected voter abstained counts as confidence 0, never as absent
    counted = [*(c for a, c in confidences.items() if a != LIKENESS),
               *(0.0 for a in missing if a != LIKENESS)]
    verdict = Verdict(
        axes=result,
        confidence=statistics.fmean(counted) if counted else 0.0,
        used=sorted(used),
        dropped=dict(sorted({**_abstentions(ordered, ok), **dropped}.items())),
        cards=list(cards),
        comment=_comment(ordered, s),
        missing=missing,
        confidences=confidences,
    )
    if all(v is None for v in result.values()):
        verdict.unscored = f"{', '.join(ok)} answered but scored no axis"
    elif "overall" in missing:
        verdict.unscored = (f"no source scored overall (expected: {', '.join(voters['overall'])})"
                            f" — {missing['overall']}")
    if verdict.unscored:
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
