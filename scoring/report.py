"""Batch reports (JSONL, CSV, an HTML page with thumbnails) and scores inside saved PNGs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from .cards import AXES, Verdict
from .comfy_meta import FIELDS
from .images import Image, to_pil

PNG_KEY = "saiten"
PNG_SCORE_KEY = "saiten_score"


@dataclass
class Entry:
    """One row of a report: the image's name, its verdict, an optional JPEG thumbnail, the
    ComfyUI metadata read from the file (`comfy_meta.FIELDS`), and where the verdict came
    from when it was not scored now ("cache", "png")."""

    name: str
    verdict: Verdict
    thumb: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    origin: str = ""


def thumbnail(image: Image, size: int = 192, quality: int = 80) -> bytes:
    """A small JPEG of the image (long side `size` px) for the HTML report."""
    pil = to_pil(image)
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def axes_of(entries: Sequence[Entry]) -> list[str]:
    extra = sorted({a for e in entries for a in e.verdict.axes} - set(AXES))
    return [*AXES, *extra]


def notes(verdict: Verdict) -> list[str]:
    """Why the verdict is what it is: unscored reason, or check findings and dropped sources."""
    if verdict.unscored:
        return [f"unscored: {verdict.unscored}"]
    found = [r for c in verdict.cards if c.ok and c.kind == "check" for r in c.reasons]
    return found + [f"{src}: {why}" for src, why in verdict.dropped.items()]


def summary(verdict: Verdict) -> str:
    """One line for a node or a preview: score, axes, confidence, and why anything is missing."""
    if verdict.unscored:
        return f"unscored: {verdict.unscored}"
    parts = [f"{a} {x:.0f}" for a, x in verdict.axes.items() if x is not None and a != "overall"]
    parts.append(f"conf {verdict.confidence:.2f}")
    line = f"{num(verdict.score) or '-'} ({', '.join(parts)})"
    why = notes(verdict)
    return line + (" | " + "; ".join(why) if why else "")


def _replace(tmp: Path, path: Path) -> Path:
    """Move a finished file into place (readers never see half a report)."""
    tmp.replace(path)
    return path


def write_jsonl(path: str | Path, entries: Sequence[Entry]) -> Path:
    """One line per image: {"file", "index", **verdict.to_dict()} (cards included), plus
    "comfy" (the ComfyUI metadata) and "reused" ("cache" / "png") when there are any."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for i, e in enumerate(entries):
            row = {"file": e.name, "index": i, **e.verdict.to_dict()}
            if e.meta:
                row["comfy"] = e.meta
            if e.origin:
                row["reused"] = e.origin
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return _replace(tmp, path)


def read_entries(path: str | Path) -> list[Entry]:
    """The entries of a report written by `write_jsonl` (no thumbnails)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            meta = d.get("comfy") if isinstance(d.get("comfy"), dict) else {}
            rows.append(Entry(d.get("file", str(d.get("index", len(rows)))),
                              Verdict.from_dict(d), None, meta, d.get("reused", "")))
    return rows


def read_jsonl(path: str | Path) -> list[tuple[str, Verdict]]:
    """(file, verdict) per line of a report written by `write_jsonl`."""
    return [(e.name, e.verdict) for e in read_entries(path)]


def meta_fields(entries: Sequence[Entry]) -> list[str]:
    """The ComfyUI metadata columns any entry has, in `comfy_meta.FIELDS` order."""
    have = {k for e in entries for k in e.meta}
    return [k for k in FIELDS if k in have]


def meta_text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def write_csv(path: str | Path, entries: Sequence[Entry]) -> Path:
    """One row per image: name, score, each axis, confidence, used, dropped, unscored; then
    the ComfyUI metadata columns (seed, steps, …, prompt) and "reused" when any row has them."""
    path = Path(path)
    axes, meta = axes_of(entries), meta_fields(entries)
    origin = ["reused"] if any(e.origin for e in entries) else []
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "score", *axes, "confidence", "used", "dropped", "unscored",
                    *meta, *origin])
        for e in entries:
            v = e.verdict
            w.writerow([e.name, num(v.score), *(num(v.value(a)) for a in axes),
                        num(v.confidence, 3), ";".join(v.used),
                        "; ".join(f"{s}: {r}" for s, r in v.dropped.items()), v.unscored or "",
                        *(meta_text(e.meta.get(k)) for k in meta),
                        *([e.origin] if origin else [])])
    return _replace(tmp, path)


def write_report(out_dir: str | Path, entries: Sequence[Entry],
                 title: str = "Saiten report", *, note: str = "",
                 pass_score: float = 60.0) -> dict[str, Path]:
    """report.jsonl, report.csv and report.html in `out_dir` (created); `note` is a line
    for the page (e.g. how many verdicts were reused), `pass_score` what counts as passed."""
    from .report_html import write_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"jsonl": write_jsonl(out / "report.jsonl", entries),
            "csv": write_csv(out / "report.csv", entries),
            "html": write_html(out / "report.html", entries, title, note=note,
                               pass_score=pass_score)}


def png_text(verdict: Verdict) -> dict[str, str]:
    """The text chunks to write into a saved PNG: "saiten" → compact ASCII JSON of the verdict
    (no cards; per-source axes and penalties summarised), "saiten_score" → the score."""
    d = verdict.to_dict(with_cards=False)
    d["axes"] = {a: (None if x is None else round(x, 2)) for a, x in d["axes"].items()}
    d["confidence"] = round(d["confidence"], 3)
    d["score"] = None if d["score"] is None else round(d["score"], 2)
    d["sources"] = {c.source + (f"#{c.repeat}" if c.repeat else ""):
                    ({"abstained": c.abstained} if not c.ok else
                     {k: v for k, v in (("axes", {a: round(x, 1) for a, x in c.axes.items()}),
                                        ("penalty", c.penalty), ("reasons", c.reasons)) if v})
                    for c in verdict.cards}
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
    to_pil(image).save(path, "PNG", pnginfo=info)
    return path


def read_png_scores(path: str | Path) -> dict[str, Any] | None:
    """What `png_text` wrote into a PNG (the "saiten" JSON), or None when it holds none."""
    with PILImage.open(path) as img:
        img.load()
        raw = getattr(img, "text", {}).get(PNG_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None
