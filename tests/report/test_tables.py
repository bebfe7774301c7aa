"""report.jsonl and report.csv (`scoring.report.tables`) written by `write_report` to real
files and read back: every verdict with the decision it got, one CSV row per image."""

from __future__ import annotations

import csv
import json

import pytest

from scoring.core.cards import AXES
from scoring.report import decided, read_entries, read_jsonl, write_report


def test_jsonl_round_trip(tmp_path, entries):
    paths = write_report(tmp_path / "out", entries)
    lines = paths["jsonl"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["file"] == "a,\"quoted\".png" and first["index"] == 0
    assert first["comment"] == "構図が安定している。<b>"  # UTF-8, not escaped
    back = read_jsonl(paths["jsonl"])
    assert [name for name, _ in back] == ["a,\"quoted\".png", "broken.png"]
    assert back[0][1] == decided(entries)[0].verdict  # the verdict and the decision it got
    assert back[0][1].decision.status == "passed" and back[0][1].decision.rule == "overall ≥ 60"
    assert back[1][1].unscored == entries[1].verdict.unscored
    assert back[1][1].decision.status == "unscored" and first["decision"]["status"] == "passed"


def test_csv_rows(tmp_path, entries):
    path = write_report(tmp_path, entries)["csv"]
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["name", "score", "status", "rule", *AXES, "confidence", "used",
                             "dropped", "unscored"]
    assert [r["status"] for r in rows] == ["passed", "unscored"]
    assert rows[0]["rule"] == "overall ≥ 60"
    assert rows[0]["name"] == "a,\"quoted\".png"
    assert float(rows[0]["score"]) == pytest.approx(63.0)
    assert float(rows[0]["composition"]) == pytest.approx(79.5)
    assert rows[0]["appeal"] == "" and rows[0]["unscored"] == ""
    assert rows[0]["used"] == "judge;qwen;technical;wd"
    assert rows[0]["dropped"] == "joy: outlier on composition (12 vs median 79)"
    assert rows[1]["score"] == "" and rows[1]["unscored"].startswith("1 of 2 required sources")


def test_read_entries_gives_back_what_was_written(tmp_path, entries):
    """What the Report node appends to: each row's name, verdict, thumbnail, ComfyUI
    metadata and origin come back; a row naming a file that is not one of ours gets none."""
    good, broken = entries
    good.meta, good.origin = {"seed": 7, "prompt": "桜"}, "cache"
    path = write_report(tmp_path, entries)["jsonl"]
    back = read_entries(path)
    assert [e.name for e in back] == [good.name, broken.name]
    assert back[0].thumb == good.thumb and back[1].thumb is None
    assert back[0].meta == {"seed": 7, "prompt": "桜"} and back[0].origin == "cache"
    assert back[1].meta == {} and back[1].origin == ""
    assert back[0].verdict == decided(entries)[0].verdict
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    rows[0]["thumb"] = "../" + rows[0]["thumb"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_entries(path)[0].thumb is None
