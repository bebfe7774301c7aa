"""Reports: entries (one image's row), the JSONL/CSV tables, the HTML page, scores in PNGs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..core.atomic import Staged, as_write_error, folder_lock
from ..ensemble.select import Rule, status
from . import thumbs
from .entries import Entry, notes, summary
from .html import render_html, write_html
from .png import read_png_scores, save_png
from .tables import fill_csv, fill_jsonl, read_entries, read_jsonl, write_csv, write_jsonl
from .thumbs import thumbnail


def decided(entries: Sequence[Entry], rule: Rule | None = None) -> list[Entry]:
    """Every entry with a decision: the filter's when its verdict carries one, else `rule`'s
    (the default rule when none is given) — so every view of the report says the same."""
    return [e if e.verdict.decision else
            dataclasses.replace(e, verdict=dataclasses.replace(
                e.verdict, decision=status(e.verdict, rule)))
            for e in entries]


def write_report(out_dir: str | Path, entries: Sequence[Entry],
                 title: str = "Saiten report", *, note: str = "",
                 run: Mapping[str, int] | None = None,
                 rule: Rule | None = None) -> dict[str, Path]:
    """report.jsonl, report.csv and report.html in `out_dir` (created); `note` is a line
    for the page (e.g. how many verdicts were reused). What passed is each verdict's own
    decision (a Score Filter's), else `rule`'s (the CLI's `--pass-score`, else the default)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise as_write_error(e, out / "report.jsonl") from e
    entries = decided(entries, rule)
    with folder_lock(out):  # another run on this folder writes its report whole, in turn
        refs = [thumbs.store(out, e.thumb) if e.thumb else None for e in entries]
        page = render_html(out / "report.html", entries, title, note=note, run=run,
                           refs=refs)
        with Staged() as staged:  # the three files change together, or not at all
            staged.write(out / "report.jsonl", lambda f: fill_jsonl(f, entries, refs))
            staged.write(out / "report.csv", lambda f: fill_csv(f, entries), newline="")
            staged.write(out / "report.html", lambda f: f.write(page))
            jsonl, csv, html = staged.commit()
    return {"jsonl": jsonl, "csv": csv, "html": html}


__all__ = ["Entry", "decided", "notes", "read_entries", "read_jsonl", "read_png_scores", "save_png",
           "summary", "thumbnail", "write_csv", "write_html", "write_jsonl", "write_report"]
