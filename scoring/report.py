"""Batch reports (JSONL, CSV, an HTML page with thumbnails) and scores inside saved PNGs."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from .cards import AXES, Verdict
from .images import Image, to_pil

PNG_KEY = "saiten"
PNG_SCORE_KEY = "saiten_score"


@dataclass
class Entry:
    """One row of a report: the image's name, its verdict and an optional JPEG thumbnail."""

    name: str
    verdict: Verdict
    thumb: bytes | None = None


def thumbnail(image: Image, size: int = 192, quality: int = 80) -> bytes:
    """A small JPEG of the image (long side `size` px) for the HTML report."""
    pil = to_pil(image)
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _axes(entries: Sequence[Entry]) -> list[str]:
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
    line = f"{_num(verdict.score) or '-'} ({', '.join(parts)})"
    why = notes(verdict)
    return line + (" | " + "; ".join(why) if why else "")


def write_jsonl(path: str | Path, entries: Sequence[Entry]) -> Path:
    """One line per image: {"file", "index", **verdict.to_dict()} (cards included)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for i, e in enumerate(entries):
            row = {"file": e.name, "index": i, **e.verdict.to_dict()}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[tuple[str, Verdict]]:
    """(file, verdict) per line of a report written by `write_jsonl`."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append((d.get("file", str(d.get("index", len(rows)))), Verdict.from_dict(d)))
    return rows


def write_csv(path: str | Path, entries: Sequence[Entry]) -> Path:
    """One row per image: name, score, each axis, confidence, used, dropped, unscored."""
    path = Path(path)
    axes = _axes(entries)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "score", *axes, "confidence", "used", "dropped", "unscored"])
        for e in entries:
            v = e.verdict
            w.writerow([e.name, _num(v.score), *(_num(v.value(a)) for a in axes),
                        _num(v.confidence, 3), ";".join(v.used),
                        "; ".join(f"{s}: {r}" for s, r in v.dropped.items()), v.unscored or ""])
    return path


_STYLE = """body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top}
th{background:#eee;cursor:pointer;position:sticky;top:0}td.n{text-align:right}
img{max-width:192px;max-height:192px}.unscored{color:#a00}.small{font-size:85%;color:#444}
details{font-size:85%}.reason{color:#a50}ul{margin:0;padding-left:1.2em}"""

_SORT = """document.querySelectorAll('th').forEach((th,i)=>th.onclick=()=>{
const tb=th.closest('table').tBodies[0],rows=[...tb.rows],up=th.dataset.up==='0';
th.dataset.up=up?'1':'0';const key=r=>{const t=r.cells[i].dataset.v??r.cells[i].innerText;
const n=parseFloat(t);return isNaN(n)?(t===''?-Infinity:t):n};
rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});
rows.forEach(r=>tb.appendChild(r))});"""


def _card_html(c: Any) -> str:
    e = html.escape
    if not c.ok:
        body = f"abstained: {e(c.abstained)}"
    else:
        parts = [f"{e(a)} {v:.0f}" for a, v in c.axes.items()]
        if c.penalty:
            parts.append(f"penalty −{c.penalty:.0f}")
        body = ", ".join(parts) or "no axes"
        if c.reasons:
            body += "<ul>" + "".join(f"<li>{e(r)}</li>" for r in c.reasons) + "</ul>"
        if c.comment:
            body += f"<br>“{e(c.comment)}”"
    rep = f" #{c.repeat}" if c.repeat else ""
    return f"<li><b>{e(c.source)}</b>{rep} ({e(c.kind)}): {body}</li>"


def write_html(path: str | Path, entries: Sequence[Entry], title: str = "Saiten report") -> Path:
    """A self-contained page: thumbnails (data URIs), scores, comments, per-source cards;
    click a column header to sort (highest first, click again to reverse)."""
    e = html.escape
    axes = _axes(entries)
    head = "".join(f"<th>{e(h)}</th>" for h in ["#", "image", "name", "score", *axes,
                                                   "confidence", "comment / sources"])
    rows = []
    for i, en in enumerate(entries):
        v = en.verdict
        img = (f'<img alt="" src="data:image/jpeg;base64,{base64.b64encode(en.thumb).decode()}">'
               if en.thumb else "")
        detail = (f'<span class="unscored">unscored: {e(v.unscored)}</span>' if v.unscored
                  else e(v.comment))
        for r in (r for c in v.cards if c.ok and c.kind == "check" for r in c.reasons):
            detail += f'<div class="reason">⚠ {e(r)}</div>'
        if v.used:
            detail += f'<div class="small">used: {e(", ".join(v.used))}</div>'
        for src, why in v.dropped.items():
            detail += f'<div class="small">dropped {e(src)}: {e(why)}</div>'
        cards = "".join(_card_html(c) for c in v.cards)
        if cards:
            detail += f"<details><summary>{len(v.cards)} cards</summary><ul>{cards}</ul></details>"
        cells = [f'<td class="n">{i}</td>', f"<td>{img}</td>", f"<td>{e(en.name)}</td>",
                 f'<td class="n">{_num(v.score)}</td>',
                 *(f'<td class="n">{_num(v.value(a))}</td>' for a in axes),
                 f'<td class="n">{_num(v.confidence, 2)}</td>', f"<td>{detail}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>"
            f"<p>{len(entries)} images; click a header to sort (again to reverse).</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<script>{_SORT}</script></body></html>")
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def write_report(out_dir: str | Path, entries: Sequence[Entry],
                 title: str = "Saiten report") -> dict[str, Path]:
    """report.jsonl, report.csv and report.html in `out_dir` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"jsonl": write_jsonl(out / "report.jsonl", entries),
            "csv": write_csv(out / "report.csv", entries),
            "html": write_html(out / "report.html", entries, title)}


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
