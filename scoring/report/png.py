"""Scores inside saved PNGs: the verdict as text chunks beside ComfyUI's prompt and workflow,
and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL.PngImagePlugin import PngInfo

from ..core.atomic import replacing
from ..core.cards import Verdict
from ..core.images import Image, to_pil
from ..publish.rules import publish_of
from .comfy_meta import text_chunks

PNG_KEY = "saiten"
PNG_SCORE_KEY = "saiten_score"


def png_text(verdict: Verdict) -> dict[str, str]:
    """The text chunks to write into a saved PNG: "saiten" → compact ASCII JSON of the verdict
    (no cards; per-source axes and penalties summarised; the publish check's verdict when one
    ran), "saiten_score" → the score."""
    d = verdict.to_dict(with_cards=False)
    d["axes"] = {a: (None if x is None else round(x, 2)) for a, x in d["axes"].items()}
    d["confidence"] = round(d["confidence"], 3)
    d["score"] = None if d["score"] is None else round(d["score"], 2)
    d["sources"] = {c.source + (f"#{c.repeat}" if c.repeat else ""):
                    ({"abstained": c.abstained} if not c.ok else
                     {k: v for k, v in (("axes", {a: round(x, 1) for a, x in c.axes.items()}),
                                        ("penalty", c.penalty), ("reasons", c.reasons)) if v})
                    for c in verdict.cards}
    if any("publish" in c.extras for c in verdict.cards):
        p = publish_of(verdict.cards)
        d["publish"] = {k: p[k] for k in ("status", "summary", "needed") if k in p}
    text = {PNG_KEY: json.dumps(d, ensure_ascii=True, separators=(",", ":"))}
    if verdict.score is not None:
        text[PNG_SCORE_KEY] = f"{verdict.score:.1f}"
    return text


def save_png(path: str | Path, image: Image, verdict: Verdict,
             text: dict[str, str] | None = None) -> Path:
    """Save `image` as a PNG carrying `png_text(verdict)` (plus any other `text` chunks)."""
    info = PngInfo()
    for key, value in {**(text or {}), **png_text(verdict)}.items():
        info.add_text(key, value)
    path = Path(path)
    with replacing(path) as f:  # a reader (or ComfyUI's file list) never sees half a PNG
        to_pil(image).save(f, "PNG", pnginfo=info)
    return Path(path)


def read_png_scores(path: str | Path) -> dict[str, Any] | None:
    """What `png_text` wrote into a PNG (the "saiten" JSON), or None when it holds none."""
    raw = text_chunks(path).get(PNG_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None
