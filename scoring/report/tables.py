"""The report's machine-readable files: report.jsonl (every verdict with its cards) and
report.csv (one row per image), written whole and read back."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..core.atomic import replacing
from ..core.cards import Verdict
from . import thumbs
from .entries import Entry, axes_of, meta_fields, meta_text, num

_SHA = re.compile(r"^[0-9a-f]{64}$")


def write_jsonl(path: str | Path, entries: Sequence[Entry],
                refs: Sequence[str | None] = ()) -> Path:
    """One line per image: {"file", "index", **verdict.to_dict()} (cards and the filter's
    decision included), plus "comfy" (the ComfyUI metadata), "reused" ("cache" / "png"),
    "thumb" (its thumbnail, `refs[i]`) and "sha256" (its content) when there are any."""
    with replacing(path, "w", encoding="utf-8") as f:
        fill_jsonl(f, entries, refs)
    return Path(path)


def fill_jsonl(f: TextIO, entries: Sequence[Entry], refs: Sequence[str | None] = ()) -> None:
    """report.jsonl's lines (see `write_jsonl`) into the open text file `f`."""
    for i, e in enumerate(entries):
        row = {"file": e.name, "index": i, **e.verdict.to_dict()}
        if e.meta:
            row["comfy"] = e.meta
        if e.origin:
            row["reused"] = e.origin
        if i < len(refs) and refs[i]:
            row["thumb"] = refs[i]
        if e.sha256:
            row["sha256"] = e.sha256
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_entries(path: str | Path) -> list[Entry]:
    """The entries of a report written by `write_jsonl`, with the thumbnails its rows refer
    to (those still in its `thumbs/` folder)."""
    path, rows = Path(path), []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            meta = d.get("comfy") if isinstance(d.get("comfy"), dict) else {}
            sha = d.get("sha256")
            rows.append(Entry(d.get("file", str(d.get("index", len(rows)))),
                              Verdict.from_dict(d), thumbs.load(path.parent, d.get("thumb")),
                              meta, d.get("reused", ""),
                              sha if isinstance(sha, str) and _SHA.match(sha) else ""))
    return rows


def read_jsonl(path: str | Path) -> list[tuple[str, Verdict]]:
    """(file, verdict) per line of a report written by `write_jsonl`."""
    return [(e.name, e.verdict) for e in read_entries(path)]


def write_csv(path: str | Path, entries: Sequence[Entry]) -> Path:
    """One row per image: name, score, the filter's status (passed / needs work / rejected /
    unscored) and the rule that decided, the publish verdict when a publish check ran, each
    axis (likeness when any), confidence, used, dropped, unscored; then the ComfyUI metadata
    columns (seed, steps, …, prompt) and "reused" when any row has them."""
    with replacing(path, "w", encoding="utf-8", newline="") as f:
        fill_csv(f, entries)
    return Path(path)


def fill_csv(f: TextIO, entries: Sequence[Entry]) -> None:
    """report.csv's rows (see `write_csv`) into the open text file `f` (newline="")."""
    axes, meta = axes_of(entries), meta_fields(entries)
    publish = ["publish"] if any(e.verdict.decision and e.verdict.decision.publish
                                 for e in entries) else []
    origin = ["reused"] if any(e.origin for e in entries) else []
    w = csv.writer(f)
    w.writerow(["name", "score", "status", "rule", *publish, *axes, "confidence", "used",
                "dropped", "unscored", *meta, *origin])
    for e in entries:
        v, d = e.verdict, e.verdict.decision
        w.writerow([e.name, num(v.score), d.status if d else "", d.rule if d else "",
                    *([d.publish if d else ""] if publish else []),
                    *(num(v.value(a)) for a in axes),
                    num(v.confidence, 3), ";".join(v.used),
                    "; ".join(f"{s}: {r}" for s, r in v.dropped.items()), v.unscored or "",
                    *(meta_text(e.meta.get(k)) for k in meta),
                    *([e.origin] if origin else [])])
