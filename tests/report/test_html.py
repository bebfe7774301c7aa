"""The HTML report (`scoring.report.html`): the page itself (thumbnails inline, text
escaped, notes shown), and in headless Chromium (DevTools protocol, tests/comfyui/cdp.py):
the gallery renders best → worst, the table sorts, filters by axis / score range / status /
prompt apply, histograms and per-prompt / per-seed summaries show, nothing is fetched from
the network and nothing logs an error — inline at a few images, thumbnail files at 5,000."""

from __future__ import annotations

import base64
import io
import re
import sys
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))  # cdp.py

from cdp import Browser, find_chromium
from helpers.reports import page_data, verdicts

from scoring.core.cards import AXES, ScoreCard
from scoring.ensemble.aggregate import combine
from scoring.report import Entry, write_report

CHROMIUM = find_chromium()

WATCH_ERRORS = """window.__errors = [];
const original = console.error;
console.error = (...a) => { window.__errors.push(a.map(String).join(' ')); original(...a); };
window.addEventListener('error', ev => window.__errors.push(
    ev.message || ('failed to load ' + (ev.target && ev.target.src))), true);"""


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (24, 16), (i * 7 % 256, i * 13 % 256, i % 256)).save(buf, "JPEG")
    return buf.getvalue()


def entry(i: int, overall: float | None, prompt: str, seed: int) -> Entry:
    if overall is None:
        v = combine([ScoreCard.abstain("vlm", "vlm", "refused"),
                     ScoreCard(source="technical", kind="check", provides=("overall",))])
    else:
        v = combine([ScoreCard(source="vlm", kind="vlm", provides=AXES,
                               axes={"overall": overall, "erotic": 100 - overall,
                                     "appeal": overall / 2}),
                     ScoreCard(source="technical", kind="check", provides=("overall",))])
    return Entry(f"img{i:05}.png", v, jpeg(i), {"seed": seed, "prompt": prompt,
                                               "checkpoint": "tiny.ckpt"})


def sample(n: int) -> list[Entry]:
    prompts = ["桜の下で", "a cat", "night city"]
    return [entry(i, None if i % 10 == 9 else float((i * 37) % 101), prompts[i % 3], i % 4)
            for i in range(n)]


def test_html_page(tmp_path, entries):
    """The page draws its rows from its data block (text set as text, never as markup)."""
    page = write_report(tmp_path, entries)["html"].read_text(encoding="utf-8")
    good, broken = page_data(page)["entries"]
    assert page.startswith("<!doctype html>") and [good["n"], broken["n"]] == [
        'a,"quoted".png', "broken.png"]
    m = re.fullmatch(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", good["t"])
    thumb = PILImage.open(io.BytesIO(base64.b64decode(m.group(1))))
    assert thumb.format == "JPEG" and max(thumb.size) == 192
    assert good["cm"] == "構図が安定している。<b>" and "<b>" not in page  # escaped
    assert "構図が安定している。\\u003cb\\u003e" in page
    assert "outlier on composition (12 vs median 79)" in good["dr"].values()
    assert good["re"] == ["blurry (ratio 0.005 < 0.01)"]
    assert {"source": "technical", "abstained": "cannot read pixels"}.items() <= next(
        c for c in broken["k"] if c["source"] == "technical").items()
    assert broken["un"].startswith("1 of 2 required sources")
    assert "<script>" in page and "onclick" in page  # sortable headers


def test_html_sorts_by_score_in_a_real_browser(browser, tmp_path):
    def scored(name: str, overall: float) -> Entry:
        return Entry(name, combine([
            ScoreCard(source="a", kind="vlm", provides=AXES, axes={"overall": overall}),
            ScoreCard(source="technical", kind="check", provides=("overall",))]))
    entries = [scored("mid.png", 50), scored("top.png", 90), scored("low.png", 10),
               Entry("bad.png", verdicts()[1])]
    page = write_report(tmp_path, entries)["html"]
    open_report(browser, page)
    expect = ["top.png", "mid.png", "low.png", "bad.png"]  # highest first, unscored last
    for n in (1, 2):
        order = browser.evaluate("""(() => {
            document.querySelectorAll('#rows th')[3].click();
            return [...document.querySelectorAll('#rows tbody tr')].map(r => r.cells[2].textContent)
        })()""")
        assert order == (expect if n == 1 else expect[::-1])
    # a script added to the page does not run: only the page's own code may (its policy)
    injected = tmp_path / "injected.html"
    injected.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.title = 'pwned'</script></body>"), encoding="utf-8")
    open_report(browser, injected)
    assert browser.evaluate("document.title") == "Saiten report"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium: the report's scripts are not run (apt-get install chromium)")
    b = Browser(CHROMIUM, width=1400, height=900)
    b.send("Page.addScriptToEvaluateOnNewDocument", source=WATCH_ERRORS)
    yield b
    b.close()


def open_report(browser: Browser, page: Path) -> float:
    t0 = time.perf_counter()
    browser.goto(page.as_uri())
    browser.wait_for("window.saitenReport && document.readyState === 'complete'", timeout=120)
    return time.perf_counter() - t0


def state(browser: Browser) -> dict:
    return browser.evaluate("""(() => {
        const tiles = [...document.querySelectorAll('#gallery .tile')];
        const score = t => t.querySelector('.b').textContent;
        return {tiles: tiles.length, first: tiles.slice(0, 3).map(score),
                last: score(tiles[tiles.length - 1]),
                unscored: document.querySelectorAll('#gallery .tile.unscored').length,
                rejected: document.querySelectorAll('#gallery .tile.rejected').length,
                rows: [...document.querySelectorAll('#rows tbody tr')].filter(r => !r.hidden)
                        .length,
                count: document.getElementById('count').textContent,
                bars: document.querySelectorAll('#hist .hist').length,
                prompts: [...document.querySelectorAll('#byprompt tbody tr')]
                        .map(r => r.cells[0].textContent),
                seeds: document.querySelectorAll('#byseed tbody tr').length,
                errors: window.__errors,
                remote: performance.getEntriesByType('resource').map(r => r.name)
                        .filter(u => !u.startsWith('file:') && !u.startsWith('data:'))};
    })()""")


def set_filter(browser: Browser, **values: str) -> dict:
    sets = "".join(f"document.getElementById('{k}').value = {v!r};" for k, v in values.items())
    browser.evaluate(sets + "window.saitenReport.apply(); true")
    return state(browser)


def test_small_report_renders_sorts_and_filters(browser, tmp_path):
    page = write_report(tmp_path, sample(30), note="3 reused from the cache.")["html"]
    open_report(browser, page)
    s = state(browser)
    assert s["errors"] == [] and s["remote"] == []
    assert s["tiles"] == 30 and s["rows"] == 30 and s["count"] == "showing 30 of 30"
    top = sorted((e.verdict.score for e in sample(30) if e.verdict.scored), reverse=True)
    assert [float(x) for x in s["first"]] == [round(x) for x in top[:3]]  # best first
    assert s["last"] == "–" and s["unscored"] == 3
    assert s["rejected"] == sum(1 for e in sample(30) if e.verdict.scored
                                and e.verdict.score < 60)
    assert s["bars"] == 3 and set(s["prompts"]) == {"桜の下で", "a cat", "night city"}
    assert s["seeds"] == 4
    assert "3 reused from the cache." in browser.evaluate("document.body.innerText")

    high = set_filter(browser, lo="50")
    expected = sum(1 for e in sample(30) if e.verdict.scored and e.verdict.score >= 50)
    assert high["tiles"] == high["rows"] == expected
    assert all(t == "–" or float(t) >= 50 for t in high["first"])
    erotic = set_filter(browser, axis="erotic", lo="90", hi="")
    assert erotic["tiles"] == sum(1 for e in sample(30) if e.verdict.scored
                                  and e.verdict.value("erotic") >= 90)
    assert set_filter(browser, axis="overall", lo="", status="unscored")["tiles"] == 3
    sakura = set_filter(browser, status="", q="桜")
    assert sakura["tiles"] == 10 and sakura["prompts"] == ["桜の下で"]

    set_filter(browser, q="")
    order = browser.evaluate("""(() => {
        window.saitenReport.view('table');
        document.querySelectorAll('#rows th')[3].click();  // score, highest first
        return [...document.querySelectorAll('#rows tbody tr')].map(r => r.cells[3].innerText)
    })()""")
    numbers = [float(x) for x in order if x]
    assert numbers == sorted(numbers, reverse=True) and order[-1] == ""
    assert browser.evaluate("document.getElementById('gallery').hidden") is True
    assert state(browser)["errors"] == []


def test_five_thousand_images_stay_fast_with_thumbnail_files(browser, tmp_path):
    many = sample(5000)
    t0 = time.perf_counter()
    page = write_report(tmp_path, many)["html"]
    written = time.perf_counter() - t0
    html = page.read_text(encoding="utf-8")
    assert "data:image/jpeg" not in html  # thumbnails are files beside the page
    thumbs = list((tmp_path / "thumbs").iterdir())
    assert len(thumbs) == len({e.thumb for e in many})
    loaded = open_report(browser, page)
    s = state(browser)
    assert s["errors"] == [] and s["remote"] == []
    assert s["tiles"] == 5000 and s["unscored"] == 500
    t1 = time.perf_counter()
    narrowed = set_filter(browser, lo="95", q="cat")
    filtered = time.perf_counter() - t1
    assert 0 < narrowed["tiles"] < 100 and narrowed["rows"] == narrowed["tiles"]
    print(f"\nreport at 5000 images: {page.stat().st_size / 1e6:.1f} MB page, written in "
          f"{written:.1f}s, opened in {loaded:.1f}s, filtered in {filtered:.2f}s")
