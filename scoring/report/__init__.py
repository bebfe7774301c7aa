"""Reports: entries (one image's row), the JSONL/CSV tables, the HTML page, scores in PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .entries import Entry, notes, summary, thumbnail
from .html import write_html
from .png import read_png_scores, save_png
from .tables import read_entries, read_jsonl, write_csv, write_jsonl


def write_report(out_dir: str | Path, entries: Sequence[Entry],
                 title: str = "Saiten report", *, note: str = "",
                 pass_score: float = 60.0) -> dict[str, Path]:
    """report.jsonl, report.csv and report.html in `out_dir` (created); `note` is a line
    for the page (e.g. how many verdicts were reused), `pass_score` what counts as passed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"jsonl": write_jsonl(out / "report.jsonl", entries),
            "csv": write_csv(out / "report.csv", entries),
            "html": write_html(out / "report.html", entries, title, note=note,
                               pass_score=pass_score)}


__all__ = ["Entry", "notes", "read_entries", "read_jsonl", "read_png_scores", "save_png",
           "summary", "thumbnail", "write_csv", "write_html", "write_jsonl", "write_report"]
