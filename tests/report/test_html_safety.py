"""A report page that no text can break (issue N.4): file names, prompts, seeds, comments,
reasons, a note and a title made of hostile text (tests/helpers/hostile_files.HOSTILE_TEXT:
`<!--<script>`, `</script>`, markup, entities, U+2028/2029, quotes, template syntax) — in
headless Chromium every tile draws, the table and the summaries hold every row, the filters
and views work, no script of theirs runs and the text reads back exactly as it was."""

from __future__ import annotations

import html
import io
import json
import re
import sys
from pathlib import Path

import pytest
from helpers.hostile_files import HOSTILE_TEXT, hostile_names
from helpers.reports import page_data
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))  # cdp.py

from cdp import Browser, find_chromium

from scoring.core.cards import AXES, ScoreCard
from scoring.ensemble.aggregate import combine
from scoring.report import Entry, write_report
from scoring.report.html import json_script

CHROMIUM = find_chromium()
WATCH = """window.__errors = []; window.__pwned = 0;
window.addEventListener('error', ev => window.__errors.push(String(ev.message)), true);"""


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (20, 14), (i * 40 % 256, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


def hostile_entries() -> list[Entry]:
    out = []
    for i, (name, text) in enumerate(zip(hostile_names(), HOSTILE_TEXT, strict=True)):
        vlm = ScoreCard(source="vlm", kind="vlm", provides=AXES, comment=text, raw=text,
                        axes={"overall": 30.0 + 6 * i, "erotic": 50.0})
        check = ScoreCard(source="technical", kind="check", provides=("overall",),
                          reasons=[text], penalty=1.0)
        judge = ScoreCard.abstain("judge", "judge", text, provides=AXES)
        cards = [vlm, check, judge] if i % 3 else [judge, check]
        out.append(Entry(name, combine(cards), jpeg(i),
                         {"prompt": text, "seed": text if i % 2 else i,
                          "checkpoint": text}))
    return out


def test_the_embedded_data_reads_back_exactly_and_holds_no_markup():
    data = {"t": list(HOSTILE_TEXT), "n": 1.5}
    tag = json_script("data", data)
    body = tag.split(">", 1)[1].rsplit("</script>", 1)[0]
    assert not re.search(r"[<>&\u2028\u2029]", body)
    assert json.loads(body) == data
    assert tag.count("</script>") == 1 and "<!--" not in tag


def test_the_page_text_is_escaped_everywhere(tmp_path):
    page = write_report(tmp_path, hostile_entries(), title=HOSTILE_TEXT[1],
                        note=HOSTILE_TEXT[0])["html"].read_text(encoding="utf-8")
    # ours alone: the strings, the data, the two scripts
    assert page.count("<script") == 4 and page.count("</script>") == 4
    assert "<!--" not in page and not re.search(r"<img[^>]*onerror", page)
    assert html.escape(HOSTILE_TEXT[1]) in page  # the title, escaped
    data = page_data(page)  # every other text is in the data block, read back exactly
    assert data["note"] == HOSTILE_TEXT[0] and data["title"] == HOSTILE_TEXT[1]
    assert sorted(e["p"] for e in data["entries"]) == sorted(HOSTILE_TEXT)
    for text in HOSTILE_TEXT:
        assert not re.search(r"[<>&]", text) or text not in page  # never raw in the page


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: the report's scripts are not "
                    "run (apt-get install chromium)")
def test_hostile_text_cannot_break_the_page_in_chromium(tmp_path):
    entries = hostile_entries()
    n = len(entries)
    page = write_report(tmp_path, entries, title=HOSTILE_TEXT[1], note=HOSTILE_TEXT[0])["html"]
    b = Browser(CHROMIUM, width=1400, height=900)
    try:
        b.send("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
        b.goto(page.as_uri())
        b.wait_for("window.saitenReport && document.readyState === 'complete'", timeout=60)
        got = b.evaluate("""(() => ({
            tiles: [...document.querySelectorAll('#gallery .tile .nm')].map(t => t.textContent),
            rows: document.querySelectorAll('#rows tbody tr').length,
            prompts: [...document.querySelectorAll('#byprompt tbody tr')]
                .map(r => r.cells[0].textContent),
            seeds: document.querySelectorAll('#byseed tbody tr').length,
            title: document.title, h1: document.querySelector('h1').textContent,
            errors: window.__errors, pwned: window.__pwned,
            scripts: document.scripts.length}))()""")
        assert got["errors"] == [] and got["pwned"] == 0 and got["scripts"] == 4
        assert sorted(got["tiles"]) == sorted(e.name for e in entries)  # every tile, exact
        assert got["rows"] == n and sorted(got["prompts"]) == sorted(HOSTILE_TEXT)
        assert got["seeds"] == n
        assert got["title"] == HOSTILE_TEXT[1] and got["h1"] == HOSTILE_TEXT[1]

        def shown(**values: str) -> int:
            sets = "".join(f"document.getElementById('{k}').value = {json.dumps(v)};"
                           for k, v in values.items())
            return b.evaluate(sets + "window.saitenReport.apply(); "
                              "document.querySelectorAll('#gallery .tile').length")

        for text in HOSTILE_TEXT:  # searching for each hostile prompt finds its image
            assert shown(q=text.lower()) >= 1, text
        assert shown(q="", lo="60") == sum(1 for e in entries if (e.verdict.score or 0) >= 60)
        assert shown(lo="", status="unscored") == sum(1 for e in entries
                                                      if not e.verdict.scored)
        assert shown(status="") == n
        b.evaluate("window.saitenReport.view('table'); document.querySelector("
                   "'#rows th:nth-child(3)').click(); true")
        first = b.evaluate("document.querySelector('#rows tbody tr').cells[2].textContent")
        assert first in {e.name for e in entries}
        assert b.evaluate("document.getElementById('table').hidden") is False
        assert b.evaluate("window.__pwned") == 0 and b.evaluate("window.__errors") == []
    finally:
        b.close()
