"""The page shell and its two languages, in headless Chromium.

Complete in Japanese and in English: every visible string comes from the i18n table. The test
switches language, walks every view and dialog (gallery, one image — passed, rejected,
unscored, rated, suggested —, table with every card open, summaries with and without
metadata, the keys dialog, each message) and fails on any text or attribute that is a string
of the other language's table, or that holds a Latin word not from the data itself. The
browser's language picks the default; the toggle's choice stays over a reload."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))  # cdp.py

import dataclasses

from cdp import Browser, find_chromium

from scoring.core.cards import AXES, KINDS
from scoring.ensemble.select import AXIS_CHOICES, Rule, decided
from scoring.report import Entry
from scoring.report.page import ASSETS, SCRIPTS, STRINGS, asset, policy

from .test_cull import entry, open_page, page_of, press, reload_page

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: the report's "
                                "scripts are not run (apt-get install chromium)")
TABLE = json.loads((ASSETS / STRINGS).read_text(encoding="utf-8"))
ALLOWED = {"Saiten", "ComfyUI", "VLM", "ratings", "csv", "python", "scoring", "learn", "Enter",
           "Esc", "English", "PNG"}
"""Latin words a Japanese page may show: names, the command, key caps."""
COLLECT = """(() => {
    const out = [];
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const p = n.parentElement;
        if (!p || p.closest('script, style, noscript') || !n.textContent.trim()) continue;
        if (p.closest('[hidden]') && !p.closest('#table, #summaries, #cull')) continue;
        out.push(n.textContent.trim());
    }
    for (const e of document.querySelectorAll('[title], [placeholder], [aria-label], [alt]'))
        for (const a of ['title', 'placeholder', 'aria-label', 'alt'])
            if (e.getAttribute(a)) out.push(e.getAttribute(a).trim());
    return out;
})()"""


def template(text: str) -> re.Pattern:
    parts = re.split(r"\{\w+\}", text)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.S)


def foreign(lang: str) -> dict[str, re.Pattern]:
    """The other language's strings that differ from this one's (language names aside)."""
    other = "en" if lang == "ja" else "ja"
    words = r"[A-Za-z]" if other == "en" else r"[\u3040-\u30ff\u4e00-\u9fff]"
    return {k: template(v) for k, v in TABLE[other].items()  # strings with words of their own
            if v != TABLE[lang][k] and not k.startswith("lang.")
            and re.search(words, re.sub(r"\{\w+\}", "", v))}


def test_the_table_has_every_key_in_both_languages_and_no_unknown_one():
    en, ja = TABLE["en"], TABLE["ja"]
    assert set(en) == set(ja)
    for k in en:
        assert en[k].strip() and ja[k].strip(), k
        assert set(re.findall(r"\{\w+\}", en[k])) == set(re.findall(r"\{\w+\}", ja[k])), k
    code = "".join(asset(s) for s in SCRIPTS) + Path(ASSETS.parent / "page.py").read_text()
    called = {k for k in re.findall(r"""\bt\(\s*"([\w.]+)\"""", code) if not k.endswith(".")}
    used = called | set(re.findall(r'data-i18n(?:-ph|-title)?="([\w.]+)"', code))
    used |= {k for k in en if f'"{k}"' in code}  # passed on as a literal
    used |= {f"st.{s}" for s in ("passed", "rejected", "unscored")}
    used |= {f"why.{s}" for s in ("passed", "rejected")} | {"lang.en", "lang.ja"}
    used |= {f"axis.{a}" for a in (*AXES, *AXIS_CHOICES)} | {f"kind.{k}" for k in KINDS}
    used |= {f"col.{k}" for k in ("seed", "checkpoint", "prompt")}
    assert used - set(en) == set(), "strings used but not in the table"
    assert set(en) - used == set(), "strings in the table nobody shows"


def data_text(entries: list[Entry], title: str) -> list[str]:
    """Every text the page shows from the data (names, prompts, reasons, comments, sources)."""
    out = [title]
    for e in entries:
        v = e.verdict
        out += [e.name, str(e.meta.get("prompt", "")), v.unscored or "", v.comment,
                *v.dropped.values(), *v.dropped, *v.used]
        for c in v.cards:
            out += [c.source, c.abstained or "", c.comment, *c.reasons]
    return sorted({t for t in out if t}, key=len, reverse=True)


def check(b: Browser, lang: str, data: list[str], where: str) -> None:
    bad = foreign(lang)
    for text in b.evaluate(COLLECT):
        rest = text  # what the page itself wrote: the data's own text taken out
        for d in data:
            rest = rest.replace(d, "\0")
        hits = [k for k, p in bad.items() if p.fullmatch(rest)]
        assert not hits, f"{where}: {text!r} is the {'en' if lang == 'ja' else 'ja'} {hits}"
        if lang == "ja":
            words = set(re.findall(r"[A-Za-z]{3,}", rest)) - ALLOWED
            assert not words, f"{where}: untranslated {sorted(words)} in {text!r}"
        else:
            assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text) or any(
                d in text for d in data) or text in (TABLE["en"]["lang.ja"],), \
                f"{where}: Japanese {text!r} on the English page"


def choose(b: Browser, lang: str) -> None:
    """What the language toggle does."""
    b.evaluate(f"""(() => {{ const l = document.getElementById('lang'); l.value = {lang!r};
        l.dispatchEvent(new Event('change')); return true }})()""")


def walk(b: Browser, lang: str, data: list[str]) -> None:
    """Every view and dialog, each checked."""
    check(b, lang, data, "gallery")
    press(b, "5")  # a rating, then a reject and a favourite beside numbers
    press(b, "x")
    press(b, "2")
    press(b, "f")
    b.evaluate("window.saitenReport.view('table'); document.querySelectorAll('#rows details')"
               ".forEach(d => { d.open = true; d.dispatchEvent(new Event('toggle')) }); true")
    check(b, lang, data, "table")
    b.evaluate("window.saitenReport.view('summaries'); true")
    check(b, lang, data, "summaries")
    b.evaluate("window.saitenReport.view('gallery'); true")
    press(b, "Home")
    press(b, "Enter")
    for i in range(b.evaluate("window.saitenReport.list.length")):
        check(b, lang, data, f"one image #{i}")
        press(b, "ArrowRight")
    b.evaluate("document.getElementById('q').value = 'nothing matches this'; "
               "window.saitenReport.apply(); true")
    check(b, lang, data, "one image, none shown")
    b.evaluate("document.getElementById('q').value = ''; window.saitenReport.apply(); true")
    press(b, "Escape")
    press(b, "?")
    assert b.evaluate("document.getElementById('help').open") is True
    check(b, lang, data, "keys dialog")
    press(b, "Escape")
    b.evaluate("document.getElementById('export').click(); true")
    check(b, lang, data, "exported")
    b.evaluate("(async () => { await window.saitenReport.save(); return true })()")
    check(b, lang, data, "save failed")
    b.evaluate("Storage.prototype.setItem = () => { throw new DOMException('full', "
               "'QuotaExceededError') }; true")
    press(b, "3")
    assert b.evaluate("document.getElementById('msg').textContent") == TABLE[lang]["msg.storage"]
    check(b, lang, data, "storage full")


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_visible_string_is_translated(tmp_path, lang):
    es = [entry(0, 95.0), entry(1, 61.0), entry(2, 30.0, 100.0), entry(3, 20.0),
          entry(4, None)]
    bare = [Entry(e.name.replace("img", "bare"), e.verdict, e.thumb) for e in es]

    def under(rule: Rule) -> list[Entry]:  # what a Score Filter with `rule` decided
        return [dataclasses.replace(e, verdict=v)
                for e, v in zip(es, decided([e.verdict for e in es], rule), strict=True)]

    pages = (("full", es), ("bare", bare),  # the default rule, then every other kind
             ("top", under(Rule(mode="top_k", top_k=1, min_confidence=0.4, unscored="pass"))),
             ("best", under(Rule(threshold=99, keep_best=True))))
    b = Browser(CHROMIUM, width=1400, height=900)
    try:
        b.send("Browser.setDownloadBehavior", behavior="deny")
        b.send("Page.addScriptToEvaluateOnNewDocument", source="window.__errors = [];"
               "window.addEventListener('error', ev => window.__errors.push(ev.message));")
        for name, entries in pages:
            open_page(b, page_of(tmp_path / name, entries))
            choose(b, lang)
            b.evaluate("document.getElementById('export').click(); true")  # nothing to export
            check(b, lang, data_text(entries, "Saiten report"), f"{name}: nothing rated")
            walk(b, lang, data_text(entries, "Saiten report"))
            assert b.evaluate("window.__errors") == []
    finally:
        b.close()


def test_the_browser_language_is_the_default_and_the_toggle_stays(tmp_path):
    page = page_of(tmp_path, [entry(0, 80.0), entry(1, None)])
    b = Browser(CHROMIUM, width=1000, height=700)
    try:
        b.send("Network.enable")
        b.send("Network.setUserAgentOverride", userAgent="Mozilla/5.0 Saiten test",
               acceptLanguage="ja-JP,ja")
        open_page(b, page)
        assert b.evaluate("document.documentElement.lang") == "ja"
        assert b.evaluate("document.getElementById('count').textContent") == "2 枚中 2 枚を表示"
        choose(b, "en")
        assert b.evaluate("document.getElementById('count').textContent") == "showing 2 of 2"
        assert b.evaluate("localStorage.getItem('saiten-lang')") == "en"  # the choice is kept
        # ... and a page that opens with it uses it over the browser's language. The value is
        # put in place as the new page starts: Chromium hands one page's storage writes to
        # the next asynchronously, and a reopened page read the old value twice in CI's
        # install runs (never here) — Chromium's part, not the page's.
        b.send("Page.addScriptToEvaluateOnNewDocument",
               source="localStorage.setItem('saiten-lang', 'en')")
        reload_page(b)
        assert b.evaluate("document.documentElement.lang") == "en"
    finally:
        b.close()


def test_numbers_and_dates_in_the_readers_format(tmp_path):
    es = [entry(i, float(i % 100)) for i in range(1200)]
    b = Browser(CHROMIUM, width=1000, height=700)
    try:
        open_page(b, page_of(tmp_path, es))
        assert b.evaluate("document.getElementById('count').textContent") == \
            "showing 1,200 of 1,200"
        written = b.evaluate("document.getElementById('written').textContent")
        assert re.fullmatch(r"Written [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M\.",
                            written), written
        choose(b, "ja")
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2} \d{1,2}:\d{2} 作成。",
                            b.evaluate("document.getElementById('written').textContent"))
    finally:
        b.close()


def test_only_the_pages_own_code_runs():
    """The policy names exactly the inlined scripts and style: nothing else can run."""
    p = policy()
    assert "'unsafe-inline'" not in p and "default-src 'none'" in p
    assert p.count("'sha256-") == len(SCRIPTS) + 1
    assert "connect-src 'self'" in p and "form-action 'none'" in p
