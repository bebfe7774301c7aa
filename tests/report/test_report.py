"""Batch reports written to real files and read back; scores inside real PNG files."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import skimage.data
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from scoring.core.cards import AXES, ScoreCard, Verdict
from scoring.core.images import as_rgb
from scoring.ensemble.aggregate import combine
from scoring.report import Entry, decided, read_jsonl, summary, thumbnail, write_report
from scoring.report.png import png_text, read_png_scores, save_png


def verdicts() -> list[Verdict]:
    good = combine([
        ScoreCard(source="qwen", kind="vlm", provides=AXES, weight=1.0,
                  axes={"erotic": 70, "composition": 80, "overall": 78},
                  comment="構図が安定している。<b>"),
        ScoreCard(source="wd", kind="tagger", provides=("erotic",), axes={"erotic": 64}),
        ScoreCard(source="joy", kind="vlm", provides=AXES, axes={"composition": 12}),
        ScoreCard(source="judge", kind="judge", provides=AXES, axes={"composition": 79}),
        ScoreCard(source="technical", kind="check", provides=("overall",), penalty=15,
                  reasons=["blurry (ratio 0.005 < 0.01)"]),
    ])
    unscored = combine([ScoreCard(source="nudenet", kind="detector", axes={"erotic": 5}),
                        ScoreCard.abstain("technical", "check", "cannot read pixels")])
    return [good, unscored]


@pytest.fixture
def entries() -> list[Entry]:
    good, unscored = verdicts()
    return [Entry("a,\"quoted\".png", good, thumbnail(as_rgb(skimage.data.astronaut()))),
            Entry("broken.png", unscored, None)]


def test_verdicts_are_what_the_report_shows(entries):
    good = entries[0].verdict
    assert good.score == pytest.approx(78 - 15)
    assert good.dropped == {"joy": "outlier on composition (12 vs median 79)"}
    assert not entries[1].verdict.scored
    # erotic (70, 64): 0.85 · 2/4; composition (80, 79; 12 dropped): 0.975 · 2/3; overall:
    # qwen alone, 0.5 (one voice) · 1/3; appeal and typeset: every source providing them
    # answered without them → missing, counting 0
    assert good.confidence == pytest.approx((0.85 * 2 / 4 + 0.975 * 2 / 3 + 0.5 / 3) / 5)
    assert set(good.missing) == {"appeal", "typeset"}


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


def test_html_page(tmp_path, entries):
    page = write_report(tmp_path, entries)["html"].read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.count("<tr>") == 3
    m = re.search(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    thumb = PILImage.open(io.BytesIO(base64.b64decode(m.group(1))))
    assert thumb.format == "JPEG" and max(thumb.size) == 192
    assert "構図が安定している。&lt;b&gt;" in page  # escaped
    assert "outlier on composition (12 vs median 79)" in page
    assert "blurry (ratio 0.005 &lt; 0.01)" in page and "abstained: cannot read pixels" in page
    assert "unscored: 1 of 2 required sources" in page
    assert "<script>" in page and "onclick" in page  # sortable headers


def test_png_text_round_trip_through_pillow(tmp_path, entries):
    good = entries[0].verdict
    text = png_text(good)
    assert set(text) == {"saiten", "saiten_score"} and text["saiten_score"] == "63.0"
    assert text["saiten"].isascii()  # a tEXt chunk is Latin-1: Japanese goes as \\u escapes
    path = tmp_path / "scored.png"
    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    PILImage.fromarray(skimage.data.coffee()).save(path, pnginfo=info)
    with PILImage.open(path) as img:
        assert img.text["saiten_score"] == "63.0"
    back = read_png_scores(path)
    assert back["score"] == pytest.approx(63.0)
    assert back["comment"] == good.comment
    assert back["dropped"] == good.dropped
    assert back["sources"]["technical"]["penalty"] == 15
    assert back["sources"]["wd"]["axes"] == {"erotic": 64.0}


def test_save_png_keeps_other_chunks_and_unscored_has_no_score(tmp_path, entries):
    img = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    path = save_png(tmp_path / "u.png", img, entries[1].verdict, {"prompt": "{}"})
    with PILImage.open(path) as pil:
        assert pil.text["prompt"] == "{}" and "saiten_score" not in pil.text
        assert pil.size == (48, 32)
    back = read_png_scores(path)
    assert back["score"] is None and back["unscored"].startswith("1 of 2")
    assert back["sources"]["technical"] == {"abstained": "cannot read pixels"}


def test_read_png_scores_without_chunk(tmp_path):
    path = tmp_path / "plain.png"
    PILImage.new("RGB", (4, 4)).save(path)
    assert read_png_scores(path) is None


def test_summary_line(entries):
    good, unscored = (e.verdict for e in entries)
    assert summary(good) == ("63.0 (erotic 67, composition 80, conf 0.25) | blurry (ratio 0.005 "
                             "< 0.01); joy: outlier on composition (12 vs median 79)")
    assert summary(unscored).startswith("unscored: 1 of 2 required sources scored (nudenet)")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no chromium on this machine: the report's sort script is not run")
def test_html_sorts_by_score_in_a_real_browser(tmp_path):
    def scored(name: str, overall: float) -> Entry:
        return Entry(name, combine([
            ScoreCard(source="a", kind="vlm", provides=AXES, axes={"overall": overall}),
            ScoreCard(source="technical", kind="check", provides=("overall",))]))
    entries = [scored("mid.png", 50), scored("top.png", 90), scored("low.png", 10),
               Entry("bad.png", verdicts()[1])]
    page = write_report(tmp_path, entries)["html"]
    clicks = "document.querySelectorAll('th')[3].click();"
    for n in (1, 2):
        test_page = tmp_path / f"click{n}.html"
        test_page.write_text(page.read_text().replace(
            "</body>", f"<script>{clicks * n}</script></body>"), encoding="utf-8")
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                              "--dump-dom", test_page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        order = re.findall(r"<td>(\w+\.png)</td>", dom)
        expect = ["top.png", "mid.png", "low.png", "bad.png"]  # highest first, unscored last
        assert order == (expect if n == 1 else expect[::-1])
