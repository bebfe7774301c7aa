"""The report of a CLI run: one row per file name, rewritten at most every few seconds."""

from __future__ import annotations

import io
import json

from scoring.batch.runner import Runner
from scoring.batch.session import Progress, Session
from scoring.core.cards import ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine
from scoring.report import Entry


def entry(name: str, overall: float) -> Entry:
    return Entry(name, combine([
        ScoreCard(source="a", kind="vlm", provides=("overall",), axes={"overall": overall}),
        ScoreCard(source="technical", kind="check", provides=("overall",))]))


def test_one_row_per_file_and_a_throttled_report(tmp_path):
    now = [100.0]
    s = Session(Runner([], AggregateSettings()), tmp_path, "t", Progress(None, io.StringIO()),
                every=5, clock=lambda: now[0])
    assert s.write() is None  # nothing yet
    s.add([entry("a.png", 10), entry("b.png", 20)])
    assert s.write() is not None
    s.add([entry("a.png", 90)])  # the file changed: its row is replaced, not added
    now[0] += 1
    assert s.write() is None  # too soon
    now[0] += 5
    paths = s.write()
    rows = [json.loads(x) for x in paths["jsonl"].read_text().splitlines()]
    assert [(r["file"], r["score"]) for r in rows] == [("b.png", 20.0), ("a.png", 90.0)]
    assert s.write() is None and s.write(force=True) is not None  # unchanged; forced
    assert "2 images: 0 scored, 0 reused from the cache." in paths["html"].read_text()
