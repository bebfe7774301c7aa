"""The example workflow and web/saiten.js in ComfyUI's real frontend (headless Chromium via
Playwright): the frontend's own prompt equals our converter's, a run fills every Saiten node's
text, badges land on Saiten Save Image, and the widget values stay as saved.

Skips (saying why) without Playwright or a Chromium (`CHROMIUM_PATH`, else on PATH)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from comfy_harness import REPO

WORKFLOW = REPO / "example_workflows" / "saiten_offline_filter.json"


@pytest.fixture(scope="module")
def page(comfy):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed: frontend test did not run")
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): frontend test did not run")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 2400, "height": 1100})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(comfy.url)
        pg.wait_for_function("window.app && window.app.graph && window.app.graph.nodes",
                             timeout=90_000)
        pg.errors = errors
        yield pg
        browser.close()


@pytest.mark.parametrize("path", sorted((REPO / "example_workflows").glob("*.json")),
                         ids=lambda p: p.stem)
def test_frontend_prompt_equals_the_converter(comfy, page, path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
    theirs = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    ours, _ = comfy.workflow_prompt(workflow)
    assert theirs == json.loads(json.dumps(ours))


def test_a_run_shows_scores_on_the_nodes(comfy, page):
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    for n in workflow["nodes"]:  # a size of its own, so nothing is served from the cache
        if n["type"] == "SaitenSampleImages":
            n["widgets_values"] = [264]
    page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
    before = set(comfy.get("/history"))
    page.evaluate("() => window.app.queuePrompt(0, 1)")
    deadline = time.monotonic() + 120
    entry = None
    while time.monotonic() < deadline and entry is None:
        new = {k: v for k, v in comfy.get("/history").items() if k not in before}
        entry = next((v for v in new.values() if v.get("status", {}).get("status_str")), None)
        time.sleep(0.2)
    assert entry and entry["status"]["status_str"] == "success"
    page.wait_for_function("""() => window.app.graph.nodes.some(n =>
        n.type === 'SaitenSaveImage' && Array.isArray(n.saitenBadges))""", timeout=30_000)
    nodes = page.evaluate("""() => window.app.graph.nodes.map(n => ({
        type: n.type,
        text: n.widgets?.find(w => w.name === 'saiten_text')?.value ?? null,
        badges: n.saitenBadges ?? null,
        values: n.serialize().widgets_values ?? []}))""")
    by_type = {n["type"]: n for n in nodes}
    for t in ("SaitenTagger", "SaitenTechnicalCheck", "SaitenEnsembleAggregate",
              "SaitenScoreFilter", "SaitenSaveImage", "SaitenShowScores"):
        assert by_type[t]["text"], f"{t} shows no text"
    assert by_type["SaitenShowScores"]["text"].count("used: nudenet, technical") >= 1
    save_id = str(next(n["id"] for n in workflow["nodes"] if n["type"] == "SaitenSaveImage"))
    ui = entry["outputs"][save_id]
    assert by_type["SaitenSaveImage"]["badges"] == ui["saiten"]
    assert len(ui["saiten"]) == len(ui["images"]) > 0
    for n in workflow["nodes"]:  # our text widget never enters the saved widget values
        assert by_type[n["type"]]["values"] == (n.get("widgets_values") or [])
    assert not [e for e in page.errors if "saiten" in e.lower()], page.errors
