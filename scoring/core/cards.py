"""Score cards (one source's opinion of one image) and verdicts (the ensemble's result)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

AXES: tuple[str, ...] = ("erotic", "composition", "appeal", "typeset", "overall")
"""The rubric's axes, each scored 0–100."""

LIKENESS = "likeness"
"""The character-likeness axis (CCIP against the user's references, 0–100, 50 at the model's
same-character threshold): scored beside the rubric's axes, never part of `overall`."""

CHECK = "check"
"""The kind of a check source (the technical check): its card is a penalty on `overall`, not a
vote."""

KINDS: tuple[str, ...] = (CHECK, "detector", "tagger", "aesthetic", "vlm", "judge")
"""What a source is."""

BROKEN = "broken"
"""A check card's `extras` key for a frame that is broken beyond scoring (a file cut short,
decoded only in part): the image is unscored with that reason, whatever else scored it."""

NEEDS_WORK = "needs work"
STATUSES: tuple[str, ...] = ("passed", NEEDS_WORK, "rejected", "unscored")
"""What the filter decided for an image: passed, needs work (its score passed but the
publish gate holds it for a mosaic), rejected (scored, did not pass) or unscored (no value
to compare; the filter's unscored policy says whether it went on)."""


def score_value(value: Any) -> float | None:
    """A card's value on an axis as a vote: a finite number within 0–100, else None (no
    vote). Never clamped: 150 or -5 on a card is a broken source, not a top or a bottom
    score."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) and 0.0 <= v <= 100.0 else None


@dataclass
class ScoreCard:
    """One source's opinion of one image, or its abstention.

    `axes` holds the axes the source scored (0–100); `provides` the axes it would score
    (so an abstention still counts as an expected vote). `penalty` (points off `overall`)
    and `reasons` come from check sources. `repeat` tells repeated runs of one source apart.
    """

    source: str
    kind: str
    provides: tuple[str, ...] = ()
    axes: dict[str, float] = field(default_factory=dict)
    comment: str = ""
    weight: float = 1.0
    confidence: float | None = None
    penalty: float = 0.0
    reasons: list[str] = field(default_factory=list)
    tags: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    abstained: str | None = None
    repeat: int = 0

    @property
    def ok(self) -> bool:
        return self.abstained is None

    @classmethod
    def abstain(cls, source: str, kind: str, reason: str, **kw: Any) -> ScoreCard:
        """A card that says this source has no opinion on this image, and why."""
        return cls(source=source, kind=kind, abstained=reason or "abstained", **kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["provides"] = list(self.provides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreCard:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["provides"] = tuple(known.get("provides", ()))
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    """What the filter decided for one image and why: `status` (one of STATUSES), whether it
    went on to the passed output (`passed`; an unscored image passes under the "pass"
    policy), the rule that decided (as the filter shows it) and, when it did not pass, why.
    `terms` are the rule's own terms (axis, threshold or top_k, min_confidence) for a reader
    that words the rule itself — the report page, in its reader's language. `publish` is the
    image's publish verdict ("publishable", "needs work", "unchecked") when a publish check ran
    or the rule gates on it, else ""; `gate` names the gate that held a passing image back
    ("character" or "publish"), else ""."""

    status: str
    passed: bool
    rule: str
    why: str = ""
    terms: dict[str, Any] = field(default_factory=dict, compare=False)
    publish: str = ""
    gate: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("publish", "gate"):
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Decision | None:
        """A decision read back from JSON, or None when `d` is not one (terms that are not
        the rule's are dropped)."""
        if not isinstance(d, dict) or d.get("status") not in STATUSES:
            return None
        return cls(status=d["status"], passed=bool(d.get("passed")), rule=str(d.get("rule", "")),
                   why=str(d.get("why", "")), terms=_terms(d.get("terms")),
                   publish=str(d.get("publish", "")), gate=str(d.get("gate", "")))


def _terms(d: Any) -> dict[str, Any]:
    """A rule's terms read back: a short axis name, finite numbers, a whole top_k."""
    if not isinstance(d, dict) or not isinstance(d.get("axis"), str) or len(d["axis"]) > 32:
        return {}
    out: dict[str, Any] = {"axis": d["axis"]}
    for key in ("threshold", "min_confidence"):
        v = d.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    out.update({key: True for key in ("character", "publish") if d.get(key) is True})
    k = d.get("top_k")
    if isinstance(k, int) and not isinstance(k, bool) and k >= 0:
        out["top_k"] = k
    return out


@dataclass
class Verdict:
    """The ensemble's result for one image, with every card behind it.

    `axes` maps each axis to its final value, or None where nothing scored it; `missing`
    names the axes whose every expected voter abstained, with who and why; `confidences`
    holds each scored axis's confidence (0–1) and `confidence` their mean (a missing axis
    counting 0). `score` is the final `overall`; without one the image is `unscored`.
    `decision` is what the filter decided (None until a filter or the CLI's pass rule saw it).
    """

    axes: dict[str, float | None]
    confidence: float
    used: list[str]
    dropped: dict[str, str]
    cards: list[ScoreCard]
    unscored: str | None = None
    comment: str = ""
    missing: dict[str, str] = field(default_factory=dict)
    confidences: dict[str, float] = field(default_factory=dict)
    decision: Decision | None = None

    @property
    def score(self) -> float | None:
        return None if self.unscored else self.axes.get("overall")

    @property
    def scored(self) -> bool:
        return self.unscored is None

    def value(self, axis: str) -> float | None:
        """The final value of `axis`, or None when that axis is unscored. An image without a
        score may keep other axes (`erotic` from a tagger while the judge is down)."""
        return self.score if axis == "overall" else self.axes.get(axis)

    def axis_confidence(self, axis: str) -> float:
        """The confidence of one axis's value (0 when it has none; verdicts saved before
        per-axis confidences give their overall confidence)."""
        return self.confidences.get(axis, self.confidence) if self.value(axis) is not None \
            else 0.0

    def to_dict(self, with_cards: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "score": self.score,
            "axes": dict(self.axes),
            "confidence": self.confidence,
            "used": list(self.used),
            "dropped": dict(self.dropped),
            "unscored": self.unscored,
            "comment": self.comment,
            "missing": dict(self.missing),
            "confidences": dict(self.confidences),
        }
        if self.decision is not None:
            d["decision"] = self.decision.to_dict()
        if with_cards:
            d["cards"] = [c.to_dict() for c in self.cards]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            axes=dict(d["axes"]),
            confidence=float(d["confidence"]),
            used=list(d["used"]),
            dropped=dict(d["dropped"]),
            cards=[ScoreCard.from_dict(c) for c in d.get("cards", [])],
            unscored=d.get("unscored"),
            comment=d.get("comment", ""),
            missing=dict(d.get("missing", {})),
            confidences=dict(d.get("confidences", {})),
            decision=Decision.from_dict(d.get("decision")),
        )


Sheet = list[list[ScoreCard]]
"""Cards per image, aligned with the batch: `sheet[i]` holds every card for image i."""


def merge_sheets(*sheets: Sheet) -> Sheet:
    """Concatenate the cards of several sheets image by image (all must be the same length)."""
    sheets = tuple(s for s in sheets if s is not None)
    if not sheets:
        return []
    n = len(sheets[0])
    for s in sheets[1:]:
        if len(s) != n:
            raise ValueError(f"score lists are for batches of different sizes ({n} vs {len(s)})")
    return [[c for s in sheets for c in s[i]] for i in range(n)]
