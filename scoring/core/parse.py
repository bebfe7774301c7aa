"""Reading a model's answer: tolerant JSON extraction, validation against the rubric, refusals."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .cards import AXES

DECLINES: tuple[str, ...] = (
    # first person, unable or unwilling, then the task (not "I can't help but admire",
    # not "I can't rate it higher")
    r"\bi(?:\s*'m|\s+am)?\s+(?:can't|cannot|can\s+not|won't|will\s+not|unable\s+to|"
    r"not\s+able\s+to)\s+(?:\w+\s+){0,2}?(?:help(?!\s+but)|assist|rate|score|grade|"
    r"evaluat|assess|review|judge|provide|comply|fulfil|process|engage|describe|analy[sz]|"
    r"continue|participate|do\s+(?:that|this))\w*(?!\s+(?:it\s+|this\s+)?(?:higher|lower|"
    r"more|less|above|below|better|worse)\b)",
    r"\bi(?:\s*'m|\s+am)?\s+not\s+comfortable", r"\bi\s+(?:must|have\s+to|need\s+to)\s+decline",
    r"\bas\s+an\s+ai\b", r"\bas\s+a\s+language\s+model", r"against\s+my\s+(?:guidelines|polic)",
    r"content\s+polic", r"(?:i'm|i\s+am)\s+sorry,?\s+but\b",
    r"申し訳(?:ありません|ございません|ない)が", r"お答え(?:でき|いたしかね|しかね)",
    r"対応(?:でき|いたしかね|しかね)", r"控えさせ", r"お手伝い(?:でき|いたしかね)",
    r"応じ(?:られ|かね)",
    r"(?:評価|採点|回答)(?:すること|は|を|が)*(?:でき(?:ません|ない)|いたしかね|しかね)",
)
"""Wording that declines the task: a refusal even when JSON with scores came with it."""

HEDGES: tuple[str, ...] = (
    r"\bi(?:\s*'m|\s+am)\s+sorry", r"\bsorry,?\s+but\b", r"\bapologi[sz]e", r"\bunable\s+to\b",
    r"\bnot\s+able\s+to\b", r"\bcan't\b", r"\bcannot\b", r"\bcan\s+not\b", r"\bwon't\b",
    r"\bwill\s+not\b",
    r"申し訳(?!程度)", r"できません", r"できない", r"いたしかね", r"しかねます",
)
"""Weaker wording: a refusal when nothing scores, or when every score is the same."""

_DECLINE = re.compile("|".join(DECLINES))
_HEDGE = re.compile("|".join(HEDGES))

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_PLAIN = re.compile(r"\s*-?\d{1,12}(?:\.\d{1,12})?\s*")

SCALE = (0.0, 100.0)
"""The range every rubric axis is scored in: a value outside it is no score."""

RAW_EXCERPT = 300
"""Characters of a model's answer a card keeps (`ScoreCard.raw`): never the whole answer."""
MAX_COMMENT = 1000
"""Characters of a model's comment kept (it goes into reports and PNGs)."""


def excerpt(text: str, limit: int = RAW_EXCERPT) -> str:
    """The start of an answer, for a card or a message (… marks a cut)."""
    text = str(text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Parsed:
    """What an answer yielded: the axes found (plain numbers within the scale), the
    comment, what was wrong (`invalid`: each axis whose value was not a plain number in
    range, with why), and the wording that made it a refusal (empty when it is none)."""

    axes: dict[str, float] = field(default_factory=dict)
    comment: str = ""
    problems: list[str] = field(default_factory=list)
    refusal: str = ""
    invalid: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Scores to vote with: some axes, and not a refusal dressed as an answer."""
        return bool(self.axes) and not self.refusal

    def why_none(self) -> str:
        """Why there is no score to vote with (for an abstention)."""
        if self.refusal:
            return f"refused: {self.refusal!r}"
        if self.invalid:
            return "no valid score: " + "; ".join(f"{a} {w}" for a, w in self.invalid.items())
        return "no valid score JSON" + (f" ({self.problems[0]})" if self.problems else "")


def _balanced_objects(text: str) -> list[str]:
    """Every top-level `{...}` span in `text`, respecting strings and escapes."""
    spans, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start:i + 1])
    if depth and start >= 0:  # truncated: try to close it
        tail = text[start:]
        if in_str:
            tail += '"'
        spans.append(tail.rstrip().rstrip(",") + "}" * depth)
    return spans


def _loads(candidate: str) -> Any:
    for attempt in (candidate, re.sub(r",\s*([}\]])", r"\1", candidate)):  # trailing commas
        try:
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            continue
    return None


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer: fenced or bare, with prose around it,
    trailing commas or a truncated tail. None when there is none."""
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for block in candidates:
        for span in _balanced_objects(block):
            obj = _loads(span)
            if isinstance(obj, dict):
                return obj
    return None


def short(value: Any, limit: int = 40) -> str:
    """`value` as a short repr for a message (never a whole answer)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_score(value: Any, scale: tuple[float, float] = SCALE) -> tuple[float | None, str]:
    """(the score, "") when `value` is a plain number within `scale` — 85, 85.5, "85", or
    {"score": 85} — else (None, why). Never clamped: 150, -5, 1e300, NaN, "8/10",
    "100/0.0001", "85%" and true are no score."""
    if isinstance(value, dict):
        inner = value.get("score", value.get("value"))
        if inner is None or isinstance(inner, dict):
            return None, f"{short(value)} is not a number"
        value = inner
    if isinstance(value, bool):
        return None, f"{short(value)} is not a number"
    if isinstance(value, str):
        if not _PLAIN.fullmatch(value):
            return None, f"{short(value)} is not a plain number"
        v = float(value)
    elif isinstance(value, (int, float)):
        try:
            v = float(value)
        except OverflowError:  # an int too large for a float
            return None, f"{short(value)} is outside {scale[0]:g}–{scale[1]:g}"
    else:
        return None, f"{short(value)} is not a number"
    if not math.isfinite(v):
        return None, f"{short(value)} is not a finite number"
    if not scale[0] <= v <= scale[1]:
        return None, f"{short(value)} is outside {scale[0]:g}–{scale[1]:g}"
    return v, ""


def scores_from_json(obj: dict[str, Any] | None, axes: tuple[str, ...] = AXES) -> Parsed:
    """Validate a parsed answer: keep the rubric axes whose values are plain numbers in
    0–100 (case-insensitive keys, numbers as strings allowed); note the missing ones and
    the invalid ones with why (an invalid value abstains on its axis, never clamped)."""
    out = Parsed()
    if not obj:
        out.problems.append("no JSON object")
        return out
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    if "scores" in lowered and isinstance(lowered["scores"], dict):
        lowered = {**{str(k).lower(): v for k, v in lowered["scores"].items()}, **lowered}
    for axis in axes:
        if axis not in lowered:
            out.problems.append(f"missing {axis}")
            continue
        v, why = plain_score(lowered[axis])
        if v is None:
            out.invalid[axis] = why
            out.problems.append(f"invalid {axis}: {why}")
        else:
            out.axes[axis] = v
    comment = lowered.get("comment", "")
    out.comment = excerpt(comment, MAX_COMMENT) if isinstance(comment, str) else ""
    return out


def parse_answer(text: str, axes: tuple[str, ...] = AXES) -> Parsed:
    """extract_json + scores_from_json, then `refusal_wording`."""
    parsed = scores_from_json(extract_json(text), axes)
    parsed.refusal = refusal_wording(text, parsed)
    if parsed.refusal:
        parsed.problems.append(f"refusal: {parsed.refusal!r}")
    return parsed


def refusal_wording(text: str, parsed: Parsed) -> str:
    """The words that make `text` a refusal, whatever its shape, else "":

    - wording that declines the task ("I can't rate explicit content", "お答えできません"),
      in the comment or in prose around the JSON, even with scores (a grammar or a JSON mode
      makes a censored model fill them in, usually with zeros);
    - weaker wording ("unable to", "できません") when nothing scored, or when every score is
      the same (all zeros, all 50s).

    A critical comment on a low score ("手の崩れが目立つ", "not erotic at all") is none."""
    if not text:
        return ""
    text = f"{text}\n{parsed.comment}"  # the comment decoded, in case the JSON escaped it
    low = text.lower().replace("\u2019", "'").replace("\uff07", "'")
    found = _DECLINE.search(low)
    values = set(parsed.axes.values())
    uniform = len(values) == 1 and (len(parsed.axes) > 1 or values == {0.0})
    if not found and (not parsed.axes or uniform):
        found = _HEDGE.search(low)
    if not found:
        return ""
    start, end = found.span()
    return (text[start:end] if len(low) == len(text) else found.group(0)).strip()


def is_refusal(text: str, axes: tuple[str, ...] = AXES) -> bool:
    """True when the answer declines instead of scoring (see `refusal_wording`)."""
    return bool(parse_answer(text, axes).refusal)
