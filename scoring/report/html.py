"""The HTML report: one self-contained page (no network) people look at — and cull — in the
morning. This module gathers the report's data; the page (`page.render`) draws it in the
reader's language with the client code in `assets/`.

Views: a gallery (thumbnails best → worst, unscored and rejected marked), one big image at a
time with its scores, the sources' comments and why the filter passed it or not, the sortable
table (every card behind each verdict), per-prompt / per-seed summaries and a histogram per
axis; filters by axis, score range, status, prompt text and your own ratings. Keys rate
(1–5, 0 clears, x rejects, f favourite) and move; ratings stay in the browser per report and
export as ratings.csv (or save into ComfyUI's user folder when ComfyUI serves the page). Up to
`INLINE_THUMBS` images the thumbnails are inlined as data URIs; past that the page loads them
lazily from the report's `thumbs/` folder (see `thumbs`), so it stays fast at thousands.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.atomic import write_text
from ..core.cards import CHECK, ScoreCard
from ..ensemble import ratings
from ..ensemble.select import DEFAULT_THRESHOLD, confidence_of
from .entries import Entry, axes_of, meta_fields, meta_text
from .page import RATINGS_ROUTE, REPORT_ROUTE, json_script, render

INLINE_THUMBS = 300
SHOWN_META = ("seed", "checkpoint", "prompt")
__all__ = ["INLINE_THUMBS", "json_script", "render_html", "write_html"]


def _round(x: float | None, digits: int = 2) -> float | None:
    """A finite number rounded, else None (the page's data holds no NaN)."""
    return round(x, digits) if isinstance(x, int | float) and math.isfinite(x) else None


def _text(value: Any) -> str | float | None:
    """A value as the page's data carries it: a finite number, a string, or None."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return _round(value, 6)
    return meta_text(value)


def _card(c: ScoreCard) -> dict[str, Any]:
    return {"source": c.source, "kind": c.kind, "repeat": c.repeat, "abstained": c.abstained,
            "axes": {a: _round(v) for a, v in c.axes.items()}, "penalty": _round(c.penalty),
            "reasons": list(c.reasons), "comment": c.comment}


def _entry(i: int, en: Entry, src: str | None, meta: Sequence[str],
           axes: Sequence[str]) -> dict[str, Any]:
    """One image as the page reads it (short keys: thousands of these)."""
    v, d = en.verdict, en.verdict.decision
    decision = None
    if d is not None:
        decision = {"rule": d.rule, "why": d.why, "passed": d.passed, **d.terms,
                    **{k: x for k, x in (("publish", d.publish), ("gate", d.gate)) if x}}
        if "axis" in d.terms:  # the confidence the rule looked at (min_confidence)
            decision["confidence"] = _round(confidence_of(v, d.terms["axis"]), 3)
    return {"i": i, "n": en.name, "h": en.sha256, "s": _round(v.score),
            "st": d.status if d else "unscored", "d": decision,
            "a": {a: _round(x) for a in axes if (x := v.value(a)) is not None},
            "c": _round(v.confidence, 3), "un": v.unscored, "cm": v.comment,
            "re": [r for c in v.cards if c.ok and c.kind == CHECK for r in c.reasons],
            "u": list(v.used), "dr": dict(v.dropped), "o": en.origin,
            "k": [_card(c) for c in v.cards], "p": _text(en.meta.get("prompt")),
            "seed": _text(en.meta.get("seed")),
            "m": {k: meta_text(en.meta.get(k)) for k in meta if k in en.meta}, "t": src}


def _threshold(entries: Sequence[Entry]) -> float:
    """The threshold "close to the threshold" means: the decisions' own when they share
    one, else the default pass score."""
    found = {en.verdict.decision.terms.get("threshold") for en in entries
             if en.verdict.decision is not None}
    one = found.pop() if len(found) == 1 else None
    return one if isinstance(one, float) else DEFAULT_THRESHOLD


def _rules(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Each rule that decided, once, with its terms (the page words it for its reader)."""
    terms = {en.verdict.decision.rule: en.verdict.decision.terms for en in entries
             if en.verdict.decision is not None}
    return [{"rule": rule, **terms[rule]} for rule in sorted(terms)]


def report_id(path: Path) -> str:
    """What the page keeps your ratings under in the browser: the report's folder."""
    return hashlib.sha256(str(path.resolve().parent).encode()).hexdigest()[:16]


def _link(file: str, folder: Path) -> str | None:
    """The image file as a link relative to the page (None when it has none, or none can
    be made: another drive)."""
    if not file:
        return None
    try:
        return quote(Path(os.path.relpath(file, folder)).as_posix())
    except ValueError:
        return None


def write_html(path: str | Path, entries: Sequence[Entry], title: str = "Saiten report", *,
               note: str = "", run: Mapping[str, int] | None = None,
               refs: Sequence[str | None] = ()) -> Path:
    """The report page (`render_html`) written at `path`."""
    return write_text(path, render_html(path, entries, title, note=note, run=run, refs=refs))


def render_html(path: str | Path, entries: Sequence[Entry], title: str = "Saiten report", *,
                note: str = "", run: Mapping[str, int] | None = None,
                refs: Sequence[str | None] = ()) -> str:
    """The report page to be written at `path`: thumbnails inlined up to `INLINE_THUMBS`
    images, past that loaded from their files beside the page (`refs[i]`, see
    `thumbs.store`). Each entry's status is its verdict's decision (`report.decided` gives
    every entry one). `run` counts what the run did (`runner.run_counts`), `note` is any
    other line for the page."""
    path = Path(path)
    inline = len(entries) <= INLINE_THUMBS
    meta, axes = [k for k in SHOWN_META if k in meta_fields(entries)], axes_of(entries)
    data = []
    for i, en in enumerate(entries):
        src = ("data:image/jpeg;base64," + base64.b64encode(en.thumb).decode()
               if inline and en.thumb else refs[i] if i < len(refs) else None)
        data.append({**_entry(i, en, src, meta, axes), "f": _link(en.path, path.parent)})
    page = render(title, {
        "id": report_id(path), "title": title, "note": note, "run": dict(run or {}),
        "threshold": _threshold(entries),
        "written": datetime.now().astimezone().isoformat(timespec="seconds"),
        "axes": [a for a in axes if a == "overall" or any(a in d["a"] for d in data)],
        "meta": meta,
        "rules": _rules(entries),
        "csv": {"header": list(ratings.HEADER), "reject": ratings.REJECT_RATING,
                "favourite": ratings.FAVOURITE_RATING, "scale": list(ratings.SCALE),
                "report": ratings.REPORT},
        "save": {"report": REPORT_ROUTE, "ratings": RATINGS_ROUTE},
        "entries": data})
    return page
