"""The publish verdict and the likeness in every view of a report: the CSV's publish and
likeness columns (only when some image has them), the page's needs-work status (in English
and Japanese, in a real browser), the saved PNG's "publish" chunk, and the CLI table."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.reports import page_data

from scoring.cli.score import format_table
from scoring.core.cards import NEEDS_WORK, ScoreCard, Verdict
from scoring.ensemble.select import Rule, decided
from scoring.publish.rules import PUBLISHABLE
from scoring.report import Entry, read_png_scores, save_png, write_report
from scoring.report.entries import decision_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))  # cdp.py
from cdp import Browser, find_chromium

CHROMIUM = find_chromium()


def _check(status: str, summary: str) -> ScoreCard:
    return ScoreCard("censor", "detector", extras={"publish": {
        "status": status, "summary": summary, "needed": 11, "regions": []}})


def _entries() -> list[Entry]:
    like = ScoreCard("likeness", "detector", ("likeness",), {"likeness": 88.0})
    vs = [Verdict({"overall": 90.0, "likeness": 88.0}, 0.8, ["a"], {},
                  [_check(PUBLISHABLE, "publishable: 1 region(s) obscured"), like]),
          Verdict({"overall": 85.0}, 0.8, ["a"], {},
                  [_check(NEEDS_WORK, "needs work: R1 (pussy): mosaic too fine (3 px found, "
                                      "11 px needed)")])]
    vs = decided(vs, Rule(threshold=60, publish=True))
    return [Entry("good.png", vs[0]), Entry("fine.png", vs[1])]


def test_csv_and_page_data(tmp_path):
    written = write_report(tmp_path, _entries())
    rows = list(csv.DictReader(written["csv"].open(encoding="utf-8")))
    assert [(r["status"], r["publish"], r["likeness"]) for r in rows] == [
        ("passed", PUBLISHABLE, "88.0"), (NEEDS_WORK, NEEDS_WORK, "")]
    header = written["csv"].read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:5] == ["name", "score", "status", "rule", "publish"]
    data = page_data(written["html"])
    assert [e["st"] for e in data["entries"]] == ["passed", NEEDS_WORK]
    assert data["entries"][1]["d"]["gate"] == "publish"
    assert data["entries"][1]["d"]["publish"] == NEEDS_WORK
    assert data["entries"][0]["a"]["likeness"] == 88.0 and "likeness" in data["axes"]
    assert data["rules"][0]["publish"] is True


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium: the report's scripts are not run (apt-get install chromium)")
    b = Browser(CHROMIUM, width=1400, height=900)
    yield b
    b.close()


def test_the_page_shows_needs_work_in_both_languages(browser, tmp_path):
    page = write_report(tmp_path, _entries())["html"]
    browser.goto(page.as_uri())
    browser.wait_for("window.saitenReport && document.readyState === 'complete'", timeout=60)
    intro = browser.evaluate("document.getElementById('intro').textContent")
    assert "1 passed (overall ≥ 60, publishable)" in intro and "1 need work" in intro, intro
    marks = browser.evaluate("[...document.querySelectorAll('#gallery .tile.needs-work .mark')]"
                             ".map(m => m.textContent)")
    assert marks == ["needs work"]
    browser.evaluate("document.getElementById('status').value = 'needs work';"
                     "window.saitenReport.apply(); true")
    assert browser.evaluate("document.querySelectorAll('#gallery .tile').length") == 1
    browser.evaluate("const l = document.getElementById('lang'); l.value = 'ja';"
                     "l.dispatchEvent(new Event('change')); true")
    intro = browser.evaluate("document.getElementById('intro').textContent")
    assert "要修正（モザイク）1" in intro and "販売可" in intro, intro
    options = browser.evaluate("[...document.querySelectorAll('#status option')]"
                               ".map(o => o.textContent)")
    assert "要修正" in options and "キャラ一致度" in browser.evaluate(
        "[...document.querySelectorAll('#axis option')].map(o => o.textContent).join()")


def test_columns_only_when_present(tmp_path, entries):
    written = write_report(tmp_path, entries)
    header = written["csv"].read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "publish" not in header and "likeness" not in header


def test_saved_png_carries_the_verdict(tmp_path):
    e = _entries()[1]
    path = save_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.float32), e.verdict)
    got = read_png_scores(path)
    assert got["publish"] == {"status": NEEDS_WORK, "needed": 11, "summary": (
        "needs work: R1 (pussy): mosaic too fine (3 px found, 11 px needed)")}
    assert got["decision"]["status"] == NEEDS_WORK and got["decision"]["publish"] == NEEDS_WORK


def test_table_and_decision_text():
    entries = _entries()
    table = format_table(entries)
    head = table.splitlines()[0]
    assert "like" in head and "publish" in head
    assert "publishable" in table.splitlines()[2] and NEEDS_WORK in table.splitlines()[3]
    assert decision_text(entries[0].verdict) == "passed (overall ≥ 60, publishable) · publishable"
