"""The real frontend (headless Chromium) with `Comfy.Locale` = ja: every Saiten node shows the
Japanese title, input, widget and output names of locales/ja/nodeDefs.json (the slots of an
Autogrow group, scores0, scores1…, keep their generated names in every language)."""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def ja_page(comfy):
    chromium = find_chromium()
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): frontend test did not run")
    before = comfy.get("/settings/Comfy.Locale")
    comfy.post("/settings/Comfy.Locale", "ja")
    browser = Browser(chromium)
    try:
        browser.goto(comfy.url)
        browser.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
        yield browser
    finally:
        browser.close()
        comfy.post("/settings/Comfy.Locale", before or "en")


def test_japanese_names_on_every_node(comfy_root: Path, ja_page):
    assert ja_page.evaluate("app.extensionManager.setting.get('Comfy.Locale')") == "ja"
    ja = json.loads((REPO / "locales" / "ja" / "nodeDefs.json").read_text(encoding="utf-8"))
    for node, schema in load_schemas(comfy_root, REPO).items():
        shown = ja_page.evaluate(f"{SLOTS}({json.dumps(node)})")
        want = ja[node]
        assert shown["title"] == want["display_name"], node
        for name in schema["inputs"]:
            if any(k.startswith(f"{name}.") for k in shown["inputs"]):
                continue  # an Autogrow group: its slots keep their generated names (scores0…)
            label = shown["widgets"].get(name) or shown["inputs"].get(name)
            assert label == want["inputs"][name]["name"], (node, name, shown)
        assert shown["outputs"] == [want["outputs"][str(i)]["name"]
                                    for i in range(len(schema["outputs"]))], node
