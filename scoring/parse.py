"""Reading a model's answer: tolerant JSON extraction, validation against the rubric, refusals."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .cards import AXES, clamp_score

REFUSAL_MARKERS: tuple[str, ...] = (
    "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm sorry", "i am sorry",
    "sorry, but", "as an ai", "unable to", "not able to", "i'm not comfortable",
    "against my guidelines", "content policy", "i must decline",
    "申し訳", "できません", "お答えできません", "対応できません", "控えさせて",
)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Parsed:
    """What an answer yielded: the axes found (clamped 0–100), the comment, and what was wrong."""

    axes: dict[str, float] = field(default_factory=dict)
    comment: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.axes)


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


def _number(value: Any) -> float | None:
    """A score from 85, 85.0, "85", "85/100", "8.5/10", {"score": 85}."""
    if isinstance(value, dict):
        value = value.get("score", value.get("value"))
    if isinstance(value, str):
        nums = _NUMBER.findall(value)
        if not nums:
            return None
        v = float(nums[0])
        if len(nums) > 1 and "/" in value:
            scale = float(nums[1])
            v = v / scale * 100.0 if scale > 0 else v
        return clamp_score(v)
    if isinstance(value, bool):
        return None
    return clamp_score(value)


def scores_from_json(obj: dict[str, Any] | None, axes: tuple[str, ...] = AXES) -> Parsed:
    """Validate a parsed answer: keep the rubric axes (case-insensitive keys, numbers as
    strings allowed, clamped 0–100), note the missing or invalid ones."""
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
        v = _number(lowered[axis])
        if v is None:
            out.problems.append(f"invalid {axis}: {lowered[axis]!r}")
        else:
            out.axes[axis] = v
    comment = lowered.get("comment", "")
    out.comment = comment.strip() if isinstance(comment, str) else ""
    return out


def parse_answer(text: str, axes: tuple[str, ...] = AXES) -> Parsed:
    """extract_json + scores_from_json."""
    return scores_from_json(extract_json(text), axes)


def is_refusal(text: str) -> bool:
    """True when the answer declines instead of scoring: a refusal marker and no scores."""
    if not text or parse_answer(text).ok:
        return False
    low = text.lower().replace("’", "'")
    return any(m in low for m in REFUSAL_MARKERS)
