"""The judge's two-stage selection: judge only the images whose prior score is in a band or
among the top-K (the others get an abstention, which aggregation treats as absent, never 0)."""

from __future__ import annotations

from collections.abc import Iterable

from ...core.cards import CHECK, ScoreCard


def prior_score(cards: Iterable[ScoreCard]) -> float | None:
    """The prior sources' weighted mean `overall` (minus check penalties), or None."""
    num = den = penalty = 0.0
    for c in cards:
        if not c.ok:
            continue
        penalty += c.penalty
        v = c.axes.get("overall")
        if v is not None and c.kind != CHECK:
            num, den = num + c.weight * v, den + c.weight
    return None if den == 0 else max(0.0, num / den - penalty)


def skipped(prior: list[list[ScoreCard]], n: int, band: tuple[float, float] | None,
            top_k: int) -> dict[int, str]:
    """The images the two-stage option leaves unjudged, with the reason for each.

    Judged: prior score within `band`, or among the `top_k` highest, or unknown."""
    if band is None and not top_k:
        return {}
    scores = {i: prior_score(prior[i] if i < len(prior) else []) for i in range(n)}
    chosen = {i for i, s in scores.items() if s is None}  # nothing known: judge it
    if band is not None:
        lo, hi = band
        chosen |= {i for i, s in scores.items() if s is not None and lo <= s <= hi}
    if top_k:
        ranked = sorted((i for i, s in scores.items() if s is not None),
                        key=lambda i: -scores[i])  # type: ignore[operator]
        chosen |= set(ranked[:top_k])
    what = " and ".join(w for w, on in (("band", band is not None), ("top-K", bool(top_k)))
                        if on)
    return {i: f"not judged (outside {what}: prior score {scores[i]:.0f})"
            for i in range(n) if i not in chosen}
