"""One report row (`Entry`): an image's name, verdict, thumbnail and ComfyUI metadata, and
the short texts every view of it shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.cards import AXES, CHECK, LIKENESS, Verdict
from .comfy_meta import FIELDS


@dataclass
class Entry:
    """One row of a report: the image's name, its verdict, an optional JPEG thumbnail, the
    ComfyUI metadata read from the file (`comfy_meta.FIELDS`), where the verdict came
    from when it was not scored now ("cache", "png"), the sha256 of the image's content (the
    file's bytes; in ComfyUI's Batch Report its thumbnail's), so a rating follows the image
    through a rename, and the image file when the row is one (the page shows it big)."""

    name: str
    verdict: Verdict
    thumb: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    sha256: str = ""
    path: str = ""


def axes_of(entries: Sequence[Entry]) -> list[str]:
    """The axes a report shows: the rubric's, then likeness when any image has one."""
    return [*AXES, *([LIKENESS] if any(e.verdict.value(LIKENESS) is not None
                                       for e in entries) else [])]


def num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def notes(verdict: Verdict) -> list[str]:
    """Why the verdict is what it is: unscored reason, or check findings and dropped sources."""
    if verdict.unscored:
        return [f"unscored: {verdict.unscored}"]
    found = [r for c in verdict.cards if c.ok and c.kind == CHECK for r in c.reasons]
    return found + [f"{src}: {why}" for src, why in verdict.dropped.items()]


def decision_text(verdict: Verdict) -> str:
    """What the filter decided, e.g. "passed (overall ≥ 75)", or "" when nothing decided."""
    d = verdict.decision
    if d is None:
        return ""
    why = f"; {d.why}" if d.why and d.status != "unscored" else ""
    went = " — passed on" if d.status == "unscored" and d.passed else ""
    publish = f" · {d.publish}" if d.publish and d.publish != d.status else ""
    return f"{d.status}{went} ({d.rule}{why}){publish}"


def summary(verdict: Verdict) -> str:
    """One line for a node or a preview: score, axes, confidence, why anything is missing,
    and what the filter decided."""
    decided = decision_text(verdict)
    tail = f" | {decided}" if decided else ""
    if verdict.unscored:
        return f"unscored: {verdict.unscored}{tail}"
    parts = [f"{a} {x:.0f}" for a, x in verdict.axes.items() if x is not None and a != "overall"]
    parts.append(f"conf {verdict.confidence:.2f}")
    line = f"{num(verdict.score) or '-'} ({', '.join(parts)})"
    why = notes(verdict)
    return line + (" | " + "; ".join(why) if why else "") + tail


def meta_fields(entries: Sequence[Entry]) -> list[str]:
    """The ComfyUI metadata columns any entry has, in `comfy_meta.FIELDS` order."""
    have = {k for e in entries for k in e.meta}
    return [k for k in FIELDS if k in have]


def meta_text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


