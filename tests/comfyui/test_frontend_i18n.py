"""The real frontend (headless Chromium): every Saiten node's help page (web/docs) opens in the
frontend's node info panel, in English, then with `Comfy.Locale` = ja the Japanese page and
the Japanese title, input, widget and output names of locales/ja/nodeDefs.json (the slots of
an Autogrow group, scores0, scores1…, keep their generated names in every language)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cdp import Browser, find_chromium
from comfy_harness import REPO
from schema_probe import load_schemas

SLOTS = """(id => { const n = LiteGraph.createNode(id); app.graph.add(n);
  const r = {title: n.title,
    inputs: Object.fromEntries(n.inputs.map(i => [i.name, i.localized_name ?? i.label])),
    widgets: Object.fromEntries((n.widgets || []).map(w => [w.name, w.label ?? w.name])),
    outputs: n.outputs.map(o => o.localized_name ?? o.label ?? o.name)};
  app.graph.remove(n); return r; })"""
SELECT = """(id => { document.querySelector('button[aria-label="Close dialog"]')?.click();
  app.graph.clear(); const n = LiteGraph.createNode(id); n.pos = [300, 200]; app.graph.add(n);
  app.canvas.deselectAll?.(); app.canvas.selectNode(n); app.canvas.setDirty(true, true);
  return true; })"""
INFO = "(() => { document.querySelector('[data-testid=info-button]')?.click(); return true })()"


def node_defs(lang: str) -> dict:
    return json.loads((REPO / "locales" / lang / "nodeDefs.json").read_text(encoding="utf-8"))


def doc_lines(node: str, lang: str) -> list[str]:
    """Plain-text lines of the help page as the panel renders them (markdown marks gone)."""
    path = REPO / "web" / "docs" / (f"{node}.md" if lang == "en" else f"{node}/{lang}.md")
    text = re.sub(r"[`*#]", "", path.read_text(encoding="utf-8"))
    return [ln.strip().removeprefix("- ") for ln in text.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def page(comfy):
    chromium = find_chromium()
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): frontend test did not run")
    before = comfy.get("/settings/Comfy.Locale")
    browser = Browser(chromium)
    try:
        browser.goto(comfy.url)
        browser.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
        yield browser
    finally:
        browser.close()
        comfy.post("/settings/Comfy.Locale", before or "en")


def shows_help(page: Browser, node: str, lang: str) -> None:
    """Select a lone `node`, open the info panel, and see its help page's text there."""
    lines = doc_lines(node, lang)
    page.evaluate(f"{SELECT}({json.dumps(node)})")
    probe = f"document.body.innerText.includes({json.dumps(lines[2])})"  # the description
    try:
        page.wait_for(probe, 3)
    except Exception:
        page.evaluate(INFO)
        page.wait_for(probe, 20)
    body = page.evaluate("document.body.innerText")
    for line in (lines[0], lines[1], lines[2], *lines[-3:]):  # title, headings, messages
        assert line in body, (node, lang, line)


def test_help_pages_in_english(comfy_root: Path, page):
    for node in load_schemas(comfy_root, REPO):
        shows_help(page, node, "en")


def test_japanese_names_and_help_on_every_node(comfy, comfy_root: Path, page):
    comfy.post("/settings/Comfy.Locale", "ja")
    page.goto(comfy.url)
    page.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
    assert page.evaluate("app.extensionManager.setting.get('Comfy.Locale')") == "ja"
    ja = node_defs("ja")
    for node, schema in load_schemas(comfy_root, REPO).items():
        shown = page.evaluate(f"{SLOTS}({json.dumps(node)})")
        want = ja[node]
        assert shown["title"] == want["display_name"], node
        for name in schema["inputs"]:
            if any(k.startswith(f"{name}.") for k in shown["inputs"]):
                continue  # an Autogrow group: its slots keep their generated names (scores0…)
            label = shown["widgets"].get(name) or shown["inputs"].get(name)
            assert label == want["inputs"][name]["name"], (node, name, shown)
        assert shown["outputs"] == [want["outputs"][str(i)]["name"]
                                    for i in range(len(schema["outputs"]))], node
        shows_help(page, node, "ja")
