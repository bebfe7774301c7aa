"""The filter's decision, image by image: which verdicts pass a rule, and why the others did
not. The Score Filter node, the CLI's report and the batch report all decide here, so what
"passed" means is one rule, carried on each verdict as its `Decision`.

Two gates apply after the score to images that would pass: `character` (the likeness axis
must be at least SAME_CHARACTER: CCIP says it is the user's character) and `publish` (the
publish check must say publishable; an image that needs a mosaic is "needs work", one the
check could not judge is rejected). Never fail open: no likeness, or no check, is no pass."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.cards import AXES, LIKENESS, Decision, Verdict
from ..publish.rules import NEEDS_WORK, PUBLISHABLE, UNCHECKED, publish_of

CONFIDENCE = "confidence"
AXIS_CHOICES: tuple[str, ...] = ("overall", *(a for a in AXES if a != "overall"), LIKENESS,
                                 CONFIDENCE)
"""What a rule can compare: the final score (overall), one axis, or the confidence (0–1)."""
MODES = ("threshold", "top_k")
UNSCORED_POLICIES = ("block", "pass")
SAME_CHARACTER = 50.0
"""The likeness at the model's same-character threshold (see sources/onnx/likeness.py)."""
DEFAULT_THRESHOLD = 60.0
"""What passes when nobody said otherwise: the Score Filter's default and the CLI's
`--pass-score`."""


@dataclass(frozen=True)
class Rule:
    """A filter rule: compare `axis` by `threshold` (value ≥ threshold passes) or keep the
    `top_k` best; unscored images follow `unscored`; `keep_best` lets the best scored image
    pass when nothing else would; scored images below `min_confidence` never pass; then
    the `character` and `publish` gates (see the module)."""

    axis: str = "overall"
    mode: str = "threshold"
    threshold: float = DEFAULT_THRESHOLD
    top_k: int = 4
    unscored: str = "block"
    keep_best: bool = False
    min_confidence: float = 0.0
    character: bool = False
    publish: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (("axis", self.axis, AXIS_CHOICES),
                                     ("mode", self.mode, MODES),
                                     ("unscored", self.unscored, UNSCORED_POLICIES)):
            if value not in allowed:
                raise ValueError(f"filter {name} must be one of {', '.join(allowed)}; "
                                 f"got {value!r}")
        if not math.isfinite(self.threshold) or not 0 <= self.min_confidence <= 1 \
                or self.top_k < 0:
            raise ValueError("filter: threshold must be a number, top_k ≥ 0 and "
                             "min_confidence within 0–1")

    def terms(self) -> dict[str, Any]:
        """The rule's terms as a decision carries them (`Decision.terms`)."""
        out: dict[str, Any] = {"axis": self.axis, "min_confidence": self.min_confidence}
        if self.mode == "top_k":
            out["top_k"] = self.top_k
        else:
            out["threshold"] = self.threshold
        out.update({k: True for k, on in (("character", self.character),
                                          ("publish", self.publish)) if on})
        return out

    def describe(self) -> str:
        """The rule as the filter shows it, e.g. "overall ≥ 75" or "top 2 by appeal"."""
        text = (f"top {self.top_k} by {self.axis}" if self.mode == "top_k"
                else f"{self.axis} ≥ {self.threshold:g}")
        if self.min_confidence > 0:
            text += f", confidence ≥ {self.min_confidence:g}"
        if self.character:
            text += ", same character"
        if self.publish:
            text += ", publishable"
        return text


def value_of(v: Verdict, axis: str) -> float | None:
    """The number the rule compares, or None when the image is unscored on that axis
    (every source expected to score it abstained, or the image has no score at all)."""
    x = (v.confidence if v.scored else None) if axis == CONFIDENCE else v.value(axis)
    return float(x) if x is not None and math.isfinite(x) else None


def confidence_of(v: Verdict, axis: str) -> float:
    """The confidence behind the compared value: that axis's, or the verdict's."""
    return v.confidence if axis == CONFIDENCE else v.axis_confidence(axis)


def decide(verdicts: Sequence[Verdict], rule: Rule) -> list[Decision]:
    """Each image's decision under `rule` (top_k and keep_best look at the whole batch)."""
    values = [value_of(v, rule.axis) for v in verdicts]
    confident = [x is not None and confidence_of(v, rule.axis) >= rule.min_confidence
                 for v, x in zip(verdicts, values, strict=True)]
    scored = [i for i, ok in enumerate(confident) if ok]
    best = sorted(scored, key=lambda i: (-values[i], i))  # type: ignore[operator]
    keep = set(best[:rule.top_k]) if rule.mode == "top_k" else \
        {i for i in scored if values[i] >= rule.threshold}  # type: ignore[operator]
    if rule.keep_best and best and not keep:
        keep.add(best[0])
    text, terms = rule.describe(), rule.terms()
    out: list[Decision] = []
    for i, (v, x) in enumerate(zip(verdicts, values, strict=True)):
        if x is None:
            why = v.missing.get(rule.axis) or v.unscored or f"no {rule.axis}"
            out.append(Decision("unscored", rule.unscored == "pass", text, why, terms))
        elif i in keep:
            out.append(Decision("passed", True, text, terms=terms))
        else:
            out.append(Decision("rejected", False, text, _why_not(v, x, rule), terms))
    return [_gates(v, d, rule) for v, d in zip(verdicts, out, strict=True)]


def after_fix(v: Verdict, publish: dict[str, Any]) -> Verdict:
    """`v` with its publish check's verdict replaced by `publish` (judged again after a fix,
    e.g. Saiten Mosaic). An image held back as needs work that is publishable now passes,
    under the rule that held it back."""
    last = max((i for i, c in enumerate(v.cards) if c.ok and "publish" in c.extras),
               default=None)
    if last is None:
        return v
    cards = list(v.cards)
    cards[last] = dataclasses.replace(cards[last],
                                      extras={**cards[last].extras, "publish": publish})
    d = v.decision
    if d is not None:
        if d.status == NEEDS_WORK and publish["status"] == PUBLISHABLE:
            d = dataclasses.replace(d, status="passed", passed=True, why="",
                                    publish=PUBLISHABLE, gate="")
        else:
            d = dataclasses.replace(d, publish=publish["status"],
                                    why=publish["summary"] if d.status == NEEDS_WORK else d.why)
    return dataclasses.replace(v, cards=cards, decision=d)


def _gates(v: Verdict, d: Decision, rule: Rule) -> Decision:
    """The decision with the image's publish status, after the character and publish gates
    (which only ever hold back an image that would pass)."""
    p = publish_of(v.cards)
    shown = p["status"] if rule.publish or p["status"] != UNCHECKED else ""
    d = dataclasses.replace(d, publish=shown)
    if not d.passed:
        return d
    if rule.character:
        x = v.value(LIKENESS)
        if x is None:
            why = v.missing.get(LIKENESS) or "no likeness source ran"
            return dataclasses.replace(d, status="rejected", passed=False, gate="character",
                                       why=f"no likeness ({why})")
        if x < SAME_CHARACTER:
            return dataclasses.replace(d, status="rejected", passed=False, gate="character",
                                       why=f"likeness {x:.0f} < {SAME_CHARACTER:g} "
                                           "(another character?)")
    if rule.publish and p["status"] != PUBLISHABLE:
        status = NEEDS_WORK if p["status"] == NEEDS_WORK else "rejected"
        return dataclasses.replace(d, status=status, passed=False, gate="publish",
                                   why=p["summary"])
    return d


def _why_not(v: Verdict, x: float, rule: Rule) -> str:
    c = confidence_of(v, rule.axis)
    if c < rule.min_confidence:
        return f"confidence {c:.2f} < {rule.min_confidence:g}"
    if rule.mode == "top_k":
        return f"not in the top {rule.top_k}"
    return f"{rule.axis} {x:.2f} < {rule.threshold:g}" if rule.axis == CONFIDENCE \
        else f"{rule.axis} {x:.0f} < {rule.threshold:g}"


def decided(verdicts: Sequence[Verdict], rule: Rule) -> list[Verdict]:
    """Copies of `verdicts` carrying their decision under `rule`."""
    return [dataclasses.replace(v, decision=d)
            for v, d in zip(verdicts, decide(verdicts, rule), strict=True)]


def status(v: Verdict, rule: Rule | None = None) -> Decision:
    """The verdict's own decision, else its decision under `rule` (the default rule when
    none is given): what a report says of an image nobody filtered."""
    return v.decision or decide([v], rule or Rule())[0]
