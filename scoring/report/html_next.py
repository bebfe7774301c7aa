"""The HTML report: one self-contained page (no network) people look at — and cull — in the
morning (client code and strings in `assets/`, assembled by `page.render`).

Views: a gallery (thumbnails best → worst, unscored and rejected marked), one big image at a
time with its scores, the sources' comments and why it passed or not, the sortable table (every
card behind each verdict), per-prompt / per-seed summaries, a histogram per axis; filters by
axis, score range, status, prompt text and your own ratings. Keys rate (1–5, 0, x, f) and move;
ratings stay in the browser per report and export as ratings.csv (or save into ComfyUI). Up to
`INLINE_THUMBS` images the thumbnails are inlined as data URIs; past that they are JPEG files
in `report_thumbs/` beside the page (named by content, loaded lazily).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..ensemble import ratings
from .entries import Entry, axes_of, meta_fields, meta_text
from .page import RATINGS_ROUTE, REPORT_ROUTE, render

INLINE_THUMBS = 300
THUMB_DIR = "report_thumbs"


def status(entry: Entry, pass_score: float) -> str:
    """"passed" (overall ≥ pass_score), "rejected" (scored below it) or "unscored"."""
    s = entry.verdict.score
    return "unscored" if s is None else "passed" if s >= pass_score else "rejected"


def _thumb_src(entry: Entry, folder: Path | None) -> str | None:
    """A data URI, or (with `folder`) the relative path of a JPEG written there."""
    if not entry.thumb:
        return None
    if folder is None:
        return "data:image/jpeg;base64," + base64.b64encode(entry.thumb).decode()
    name = hashlib.sha1(entry.thumb).hexdigest()[:20] + ".jpg"
    path = folder / name
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(entry.thumb)
        tmp.replace(path)
    return f"{THUMB_DIR}/{name}"


def _card(c: Any) -> dict[str, Any]:
    return {"source": c.source, "kind": c.kind, "repeat": c.repeat, "abstained": c.abstained,
            "axes": {a: round(v, 2) for a, v in c.axes.items()},
            "penalty": round(c.penalty, 2), "reasons": list(c.reasons), "comment": c.comment}


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def _entry(i: int, en: Entry, pass_score: float, src: str | None, meta: list[str]
           ) -> dict[str, Any]:
    v = en.verdict
    return {"i": i, "n": en.name, "h": getattr(en, "sha256", "") or "",
            "s": _round(v.score), "st": status(en, pass_score),
            "a": {a: _round(x) for a in v.axes if (x := v.value(a)) is not None},
            "c": _round(v.confidence, 3), "un": v.unscored, "cm": v.comment,
            "re": [r for c in v.cards if c.ok and c.kind == "check" for r in c.reasons],
            "u": list(v.used), "dr": dict(v.dropped), "o": en.origin,
            "k": [_card(c) for c in v.cards],
            "p": en.meta.get("prompt"), "seed": en.meta.get("seed"),
            "m": {k: meta_text(en.meta.get(k)) for k in meta if k in en.meta},
            "t": src}


def report_id(path: Path) -> str:
    """What the page keeps your ratings under in the browser: the report's folder."""
    return hashlib.sha256(str(path.resolve().parent).encode()).hexdigest()[:16]


def write_html(path: str | Path, entries: Sequence[Entry], title: str = "Saiten report", *,
               note: str = "", pass_score: float = 60.0) -> Path:
    """The report page at `path` (thumbnail files beside it past `INLINE_THUMBS` images)."""
    path = Path(path)
    axes, meta = axes_of(entries), meta_fields(entries)
    folder = None
    if len(entries) > INLINE_THUMBS:
        folder = path.parent / THUMB_DIR
        folder.mkdir(parents=True, exist_ok=True)
    shown_meta = [k for k in ("seed", "checkpoint", "prompt") if k in meta]
    data = [_entry(i, en, pass_score, _thumb_src(en, folder), shown_meta)
            for i, en in enumerate(entries)]
    present = [a for a in axes if a == "overall" or any(a in d["a"] for d in data)]
    page = render(title, {
        "id": report_id(path), "title": title, "note": note, "pass": pass_score,
        "written": datetime.now().astimezone().isoformat(timespec="seconds"),
        "axes": present, "meta": shown_meta,
        "csv": {"header": list(ratings.HEADER), "reject": ratings.REJECT_RATING,
                "favourite": ratings.FAVOURITE_RATING, "scale": list(ratings.SCALE),
                "report": ratings.REPORT},
        "save": {"report": REPORT_ROUTE, "ratings": RATINGS_ROUTE},
        "entries": data})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
