"""The whole loop in a real ComfyUI: the sample images scored by two taggers (one that sees
quality as the user does, one that sees it backwards) into a Batch Report; its page opened
from ComfyUI in headless Chromium, in Japanese, rated from the keyboard and saved through the
pack's route into the user folder; `python -m scoring learn` on that file; then the Aggregate
node with the profile ranks the images as the user does. Plus the route against hostile
names, symlinks, origins and bodies, and the page route against planted files."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from cdp import Browser, find_chromium
from comfy_harness import on_start
from graphs import Graph
from helpers.models.onnx_models import build_cl, cl_tags
from helpers.run_cli import run

from scoring.ensemble.learn import rho
from scoring.ensemble.profile import load_profile
from scoring.ensemble.ratings import REPORT, parse

FOLDER = "saiten_loop"
TABLE = json.loads((Path(__file__).resolve().parents[2] / "scoring/report/assets/i18n.json")
                   .read_text(encoding="utf-8"))


@on_start
def _taggers(models_dir: Path, env: dict[str, str]) -> None:
    """cl-bright: quality rises with brightness (as the user sees it); cl-dark: backwards."""
    tags = cl_tags()
    names = [t for t, _ in tags]
    for name, sign in (("cl-bright", 1.0), ("cl-dark", -1.0)):
        w = np.zeros((3, len(tags)), np.float32)
        w[:, names.index("best quality")] = 3.0 * sign
        w[:, names.index("worst quality")] = -3.0 * sign
        build_cl(models_dir / "saiten_tagger" / name, tags, w, np.zeros(len(tags)))


def graph(comfy, size: int, calibration: str = "", folder: str = FOLDER) -> tuple[dict, str]:
    g = Graph(comfy.object_info)
    img = g.add("SaitenSampleImages", size=size)
    bright = g.add("SaitenTagger", images=[img, 0], model="cl-bright", label="bright")
    dark = g.add("SaitenTagger", images=[img, 0], model="cl-dark", label="dark",
                 scores=[bright, 0])
    tech = g.add("SaitenTechnicalCheck", images=[img, 0], scores=[dark, 0])
    agg = g.add("SaitenEnsembleAggregate", **{"scores.scores0": [tech, 0]},
                calibration=calibration)
    g.add("SaitenBatchReport", images=[img, 0], verdicts=[agg, 0], folder=folder)
    return g.prompt, agg


def http(comfy, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(comfy.url + path, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def save(comfy, body: object, **headers: str) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    code, _, out = http(comfy, "POST", "/saiten/ratings", raw,
                        {"Content-Type": "application/json", **headers})
    return code, json.loads(out or b"{}")


@pytest.fixture(scope="module")
def report(comfy) -> Path:
    for size in (512, 320):  # two nights: 14 images in one report
        comfy.run(graph(comfy, size)[0], timeout=300)
    out = comfy.output_dir / FOLDER
    assert len((out / "report.jsonl").read_text().splitlines()) == 14
    return out


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): the page did not run")
    b = Browser(chromium, width=1400, height=900)
    b.send("Page.addScriptToEvaluateOnNewDocument", source="""window.__errors = [];
        window.addEventListener('error', ev => window.__errors.push(ev.message), true);
        document.addEventListener('securitypolicyviolation',
            ev => window.__errors.push('CSP ' + ev.violatedDirective));""")
    yield b
    b.close()


def press(b: Browser, key: str) -> None:
    code = {"Enter": 13, "Escape": 27}.get(key, ord(key.upper()))
    b.send("Input.dispatchKeyEvent", type="keyDown", key=key, windowsVirtualKeyCode=code,
           **({"text": key} if len(key) == 1 else {}))
    b.send("Input.dispatchKeyEvent", type="keyUp", key=key, windowsVirtualKeyCode=code)


def test_page_from_comfyui_rated_by_keys_and_saved(comfy, report, browser):
    code, headers, _ = http(comfy, "GET", f"/saiten/report/{FOLDER}/report.html")
    assert code == 200 and "script-src 'sha256-" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    browser.goto(f"{comfy.url}/saiten/report/{FOLDER}/report.html")
    browser.wait_for("window.saitenReport && window.saitenReport.ready", 60)
    browser.evaluate("(() => { const l = document.getElementById('lang'); l.value = 'ja';"
                     " l.dispatchEvent(new Event('change')); return true })()")
    assert browser.evaluate("document.getElementById('save').hidden") is False
    assert browser.evaluate("[...document.querySelectorAll('#gallery img')]"
                            ".every(i => i.getAttribute('src').startsWith('thumbs/') "
                            "|| i.getAttribute('src').startsWith('data:'))")
    # the user's taste: what cl-bright says, in five steps
    values = browser.evaluate("""window.saitenReport.list.map(e => (e.k.find(c =>
        c.source === 'bright') || {axes: {}}).axes.overall)""")
    cuts = np.quantile(values, [0.2, 0.4, 0.6, 0.8])
    for v in values:  # in gallery order; each key moves on
        press(browser, str(1 + int(np.searchsorted(cuts, v, side="right"))))
    assert browser.evaluate("document.getElementById('progress').textContent") == \
        "14 枚中 14 枚を評価済み"
    browser.evaluate("document.getElementById('save').click(); true")
    msg = browser.wait_for("document.getElementById('msg').textContent", 30)
    rel = f"saiten/ratings/{FOLDER}.csv"
    assert msg.startswith(TABLE["ja"]["msg.saved"].format(n=14, path=rel)), msg
    assert browser.evaluate("window.__errors") == []
    saved = comfy.base / "user" / rel
    text = saved.read_text(encoding="utf-8")
    assert f"{REPORT}{report.resolve()}" in text.splitlines()
    rows = parse(text)
    assert len(rows) == 14 and all(len(r.sha256) == 64 for r in rows)


def test_learn_then_the_aggregate_uses_the_profile(comfy, report):
    ratings = comfy.base / "user" / "saiten" / "ratings" / f"{FOLDER}.csv"
    if not ratings.exists():
        pytest.skip("needs the saved ratings of the test above")
    profile = comfy.base / "user" / "saiten" / "profile.json"
    r = run("learn", str(ratings), "--out", str(profile), cwd=comfy.base)
    assert r.returncode == 0, r.stderr
    assert "14 of 14 ratings matched" in r.stdout and "(14 by content hash)" in r.stdout
    assert "ranks images it was not fit on better than the defaults" in r.stdout, r.stdout
    learned = load_profile(profile)
    assert learned.fit["adopted"] is True and learned.weights

    def ranked(calibration: str) -> tuple[float, str]:
        prompt, agg = graph(comfy, 384, calibration, folder="saiten_loop_check")
        h = comfy.run(prompt, timeout=300)
        rows = [json.loads(x) for x in
                (comfy.output_dir / "saiten_loop_check" / "report.jsonl").read_text()
                .splitlines()][-7:]
        bright = [next(c["axes"]["overall"] for c in x["cards"] if c["source"] == "bright")
                  for x in rows]
        scores = [x["score"] for x in rows]
        return rho(np.array(scores, float), np.array(bright, float)), h.text(agg)

    before, _ = ranked("")
    after, text = ranked("saiten/profile.json")
    assert after > 0.8 and after > before + 0.3, (before, after)
    assert "saiten/profile.json" in text


def test_the_route_refuses_hostile_saves(comfy, report, tmp_path):
    ok = {"report": FOLDER, "ratings": [{"file": "a.png", "rating": 3, "sha256": "",
                                         "flag": ""}]}
    user = comfy.base / "user"
    for bad, why in ((dict(ok, report="../../etc"), "without '..'"),
                     (dict(ok, report="/etc"), "without '..'"),
                     (dict(ok, report="nowhere"), "no report"),
                     (dict(ok, ratings=[{"file": "a", "rating": float("nan")}]),
                      "finite number"),
                     (dict(ok, ratings=[{"file": "a\u0000b", "rating": 3}]), "file must be"),
                     (dict(ok, ratings=[{"file": "a", "rating": 3, "sha256": "../x"}]),
                      "sha256"),
                     (dict(ok, ratings="a.png,3"), "expected"),
                     ([1, 2], "expected")):
        code, body = save(comfy, bad)
        assert code == 400 and why in body["error"], (bad, body)
    code, body = save(comfy, b"{" * 50000)
    assert code == 400 and body["error"] == "the body is not JSON"
    big = json.dumps(dict(ok, ratings=[{"file": "x" * 1000, "rating": 3}] * 9000)).encode()
    assert len(big) > 8 << 20
    assert save(comfy, big)[0] == 413
    code, _, _ = http(comfy, "POST", "/saiten/ratings", json.dumps(ok).encode(),
                      {"Content-Type": "text/plain"})
    assert code == 415  # a form post from another site cannot be JSON without a preflight
    assert save(comfy, ok, Origin="http://evil.example")[0] == 403  # ComfyUI's own check
    # a symlink out of the user folder: refused, nothing written outside
    outside = tmp_path / "outside"
    outside.mkdir()
    ratings_dir = user / "saiten" / "ratings"
    ratings_dir.mkdir(parents=True, exist_ok=True)
    link = ratings_dir / f"{FOLDER}_evil.csv"
    os.symlink(outside / "stolen.csv", link)
    code, body = save(comfy, dict(ok, report=f"{FOLDER}_evil"))
    assert code == 400 and not (outside / "stolen.csv").exists()
    code, body = save(comfy, ok)
    assert code == 200 and body == {"saved": f"saiten/ratings/{FOLDER}.csv", "count": 1}


def test_the_page_route_serves_only_report_pages(comfy, report):
    planted = comfy.output_dir / "planted"
    planted.mkdir(exist_ok=True)
    (planted / "report.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    (planted / "report.jsonl").write_text("", encoding="utf-8")
    code, headers, body = http(comfy, "GET", "/saiten/report/planted/report.html")
    assert code == 200 and b"alert(1)" not in body and "Batch Report" in body.decode()
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    for path in (f"{FOLDER}/report.jsonl", f"{FOLDER}/../../user/x/report.html",
                 "%2e%2e/%2e%2e/report.html", f"{FOLDER}/thumbs/../report.jsonl"):
        code, _, _ = http(comfy, "GET", f"/saiten/report/{path}")
        assert code in (400, 404), path
    thumb = next((report / "thumbs").iterdir()).name
    code, headers, body = http(comfy, "GET", f"/saiten/report/{FOLDER}/thumbs/{thumb}")
    assert code == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
