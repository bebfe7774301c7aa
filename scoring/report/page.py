"""The report page's shell: the client code in `assets/` (report.js, cull.js, report.css, the
en/ja strings in i18n.json) inlined around the report's data, so report.html stays one
self-contained file that works from disk or served by ComfyUI.

The page allows only its own code to run: a Content-Security-Policy names the hashes of the
inlined scripts and style (`policy()`), so text in the data — a file name, a prompt — can never
become script, whatever it holds. The ComfyUI route sends the same policy as a header.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import cache
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets"
SCRIPTS = ("report.js", "cull.js")
STYLE = "report.css"
STRINGS = "i18n.json"
REPORT_ROUTE = "/saiten/report"
"""ComfyUI serves a report folder of its output directory here (`/saiten/report/<folder>/…`)."""
RATINGS_ROUTE = "/saiten/ratings"
"""…and takes the page's ratings here (POST), into its user folder."""

_BODY = """<header><h1 id="title"></h1><span id="progress"></span>
<button id="export" data-i18n="b.export"></button><button id="save" data-i18n="b.save" hidden>
</button><button id="keys" data-i18n="b.keys"></button><select id="lang"><option value="en"
data-i18n="lang.en"></option><option value="ja" data-i18n="lang.ja"></option></select></header>
<p><span id="intro"></span> <span id="note"></span> <span id="written"></span>
<span data-i18n="sortHint"></span></p><div id="msg" role="status"></div>
<div id="controls"><span class="views"><button data-v="gallery" data-i18n="view.gallery"></button>
<button data-v="cull" data-i18n="view.cull"></button><button data-v="table" data-i18n="view.table">
</button><button data-v="summaries" data-i18n="view.summaries"></button></span>
<label><span data-i18n="f.axis"></span> <select id="axis"></select></label>
<label><span data-i18n="f.score"></span> <input id="lo" type="number" min="0" max="100"
data-i18n-ph="f.min"> – <input id="hi" type="number" min="0" max="100" data-i18n-ph="f.max">
</label><label><span data-i18n="f.status"></span> <select id="status"><option value=""
data-i18n="f.all"></option><option value="passed" data-i18n="st.passed"></option><option
value="needs work" data-i18n="st.needs work"></option><option
value="rejected" data-i18n="st.rejected"></option><option value="unscored"
data-i18n="st.unscored"></option></select></label><label><span data-i18n="f.mine"></span>
<select id="mine"><option value=""
data-i18n="f.all"></option><option value="unrated" data-i18n="f.unrated"></option><option
value="next" data-i18n="f.next"></option><option value="disagree" data-i18n="f.disagree">
</option><option value="rated" data-i18n="f.rated"></option></select></label>
<label><span data-i18n="f.query"></span> <input id="q" type="search"></label>
<label><input id="advance" type="checkbox"> <span data-i18n="advance"></span></label>
<span id="count"></span></div><div id="hist"></div>
<div id="table" hidden><table id="rows"><thead><tr></tr></thead><tbody></tbody></table></div>
<div id="gallery"></div><div id="summaries" hidden><h2 data-i18n="sum.byPrompt"></h2>
<div id="byprompt"></div><h2 data-i18n="sum.bySeed"></h2><div id="byseed"></div></div>
<div id="cull" hidden></div><dialog id="help"><h2 data-i18n="keys.title"></h2><ul>
<li data-i18n="keys.move"></li><li data-i18n="keys.open"></li><li data-i18n="keys.rate"></li>
<li data-i18n="keys.reject"></li><li data-i18n="keys.fav"></li><li data-i18n="keys.help"></li>
</ul><button data-i18n="b.close"></button></dialog>
<noscript>This page needs JavaScript. / このページには JavaScript が必要です。</noscript>"""


@cache
def asset(name: str) -> str:
    """The text of one file in `assets/`."""
    return (ASSETS / name).read_text(encoding="utf-8")


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def policy() -> str:
    """The Content-Security-Policy of the page: only the pack's own script and style run; no
    request leaves for anywhere but the page's own origin."""
    scripts = " ".join(_sha(asset(s)) for s in SCRIPTS)
    return (f"default-src 'none'; script-src {scripts}; style-src {_sha(asset(STYLE))}; "
            "img-src 'self' data: blob: file:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'")


_JSON_UNSAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_script(element_id: str, data: Any) -> str:
    """`data` in a `<script type="application/json">` element that no text can end or
    bend: inside the JSON every `<`, `>`, `&` and U+2028/2029 is written as a \\u escape
    (JSON.parse reads them back as they were), so no `</script>`, `<!--` or `<script`
    appears in it. The page reads it with JSON.parse(textContent) and sets every text it
    shows through textContent."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False).translate(_JSON_UNSAFE)
    return (f'<script type="application/json" id="{html.escape(element_id)}">{text}'
            "</script>")


def render(title: str, data: dict[str, Any]) -> str:
    """The whole page: `data` (see html.write_html) read by the inlined scripts."""
    strings = json.loads(asset(STRINGS))
    scripts = "".join(f"<script>{asset(s)}</script>" for s in SCRIPTS)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy())}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{asset(STYLE)}</style></head><body>"
            f"{_BODY}{json_script('i18n', strings)}{json_script('data', data)}{scripts}"
            "</body></html>")
