"""Nodes 2.0: the frontend's Vue-nodes mode paints no canvas foreground, so the score text and
the score badges must come through what both modes render (DOM widgets). The offline example
runs in the real frontend with `Comfy.VueNodes.Enabled` on and off; every Saiten node's text
and Saiten Save Image's badges are on screen in both, and a screenshot of each goes into the
test artefacts ($SAITEN_ARTEFACTS, else .cache/artefacts)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
from cdp import Browser, BrowserError, find_chromium
from comfy_harness import REPO

WORKFLOW = REPO / "example_workflows" / "saiten_offline_filter.json"
ARTEFACTS = Path(os.environ.get("SAITEN_ARTEFACTS", REPO / ".cache" / "artefacts"))
SHOWN = """(() => { const seen = el => !!el && el.isConnected && el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden' && el.offsetWidth > 0 && el.offsetHeight > 0;
  const areas = [...document.querySelectorAll('textarea')].filter(seen);
  return app.graph.nodes.map(n => {
    const text = n.widgets?.find(w => w.name === 'saiten_text');
    const row = n.widgets?.find(w => w.name === 'saiten_badges');
    return {id: String(n.id), type: n.type, text: text?.value ?? null,
            textShown: !!text && areas.some(a => a.value === text.value),
            badges: row ? [...row.element.children].map(c => c.textContent) : null,
            badgesShown: seen(row?.element)};
  }); })()"""


def laid_out(vue: bool, outputs: dict) -> str:
    """JS: true once the mode is `vue` and every Saiten node shows the text / badges that
    the prompt's `outputs` gave it (what the assertions below check)."""
    texts = [k for k, out in outputs.items() if "text" in out]
    badges = [k for k, out in outputs.items() if "saiten" in out]
    return (f"((nodes, texts, badges) => (document.querySelectorAll('[data-node-id]').length"
            f" > 0) === {str(vue).lower()} && nodes.every(n => !n.type.startsWith('Saiten') || "
            f"((!texts.includes(n.id) || n.textShown) && (!badges.includes(n.id) || "
            f"n.badgesShown))))({SHOWN}, {json.dumps(texts)}, {json.dumps(badges)})")


@pytest.fixture(scope="module")
def browser(comfy):
    chromium = find_chromium()
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): frontend test did not run")
    before = comfy.get("/settings/Comfy.VueNodes.Enabled")
    b = Browser(chromium)
    try:
        yield b
    finally:
        b.close()
        comfy.post("/settings/Comfy.VueNodes.Enabled", bool(before))


@pytest.mark.parametrize(("vue", "size"), [(True, 136), (False, 144)], ids=["vue-on", "vue-off"])
def test_text_and_badges_show(comfy, browser, vue, size):
    comfy.post("/settings/Comfy.VueNodes.Enabled", vue)
    browser.goto(comfy.url)
    browser.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
    assert browser.evaluate("app.extensionManager.setting.get('Comfy.VueNodes.Enabled')") is vue
    browser.evaluate("document.querySelector('button[aria-label=\"Close dialog\"]')?.click(); 1")
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    for n in workflow["nodes"]:  # a size of its own, so nothing is served from the cache
        if n["type"] == "SaitenSampleImages":
            n["widgets_values"] = [size]
    browser.evaluate(f"window.app.loadGraphData({json.dumps(workflow)})")
    before = set(comfy.get("/history"))
    browser.evaluate("window.app.queuePrompt(0, 1).then(() => true)")
    deadline, entry = time.monotonic() + 120, None
    while time.monotonic() < deadline and entry is None:
        new = [v for k, v in comfy.get("/history").items() if k not in before]
        entry = next((v for v in new if v.get("status", {}).get("status_str")), None)
        time.sleep(0.2)
    assert entry and entry["status"]["status_str"] == "success"
    browser.wait_for("app.graph.nodes.some(n => n.widgets?.some(w => w.name === "
                     "'saiten_badges'))", 30)
    with contextlib.suppress(BrowserError):  # the mode has laid its widgets out (else the
        browser.wait_for(laid_out(vue, entry["outputs"]), 30)  # asserts below say what not)
    vue_dom = browser.evaluate("document.querySelectorAll('[data-node-id]').length")
    assert (vue_dom > 0) is vue  # the mode really is what the setting says
    nodes = {n["id"]: n for n in browser.evaluate(SHOWN)}
    for node_id, out in entry["outputs"].items():
        if "text" in out and nodes[node_id]["type"].startswith("Saiten"):
            n = nodes[node_id]
            assert n["text"] == "\n".join(out["text"]) and n["textShown"], n
        if "saiten" in out:
            n = nodes[node_id]
            labels = [f"#{i} {b['label']}" for i, b in enumerate(out["saiten"])]
            assert n["badges"] == labels and n["badgesShown"], n
    assert any("saiten" in out for out in entry["outputs"].values())
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(ARTEFACTS / f"frontend-vue-nodes-{'on' if vue else 'off'}.png")
    assert shot.stat().st_size > 10_000
