"""The example workflows and web/saiten.js in ComfyUI's real frontend (headless Chromium over
the DevTools protocol): the frontend's own prompt equals our converter's, a run fills every
Saiten node's text, badges land on Saiten Save Image, and the widget values stay as saved.

Skips (saying why) without a Chromium (`CHROMIUM_PATH`, else on PATH)."""

from __future__ import annotations

import json
import time

import pytest
from comfy_harness import REPO

WORKFLOW = REPO / "example_workflows" / "saiten_offline_filter.json"


@pytest.mark.parametrize("path", sorted((REPO / "example_workflows").glob("*.json")),
                         ids=lambda p: p.stem)
def test_frontend_prompt_equals_the_converter(comfy, page, path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    page.evaluate(f"window.app.loadGraphData({json.dumps(workflow)})")
    theirs = page.evaluate("window.app.graphToPrompt().then(r => r.output)")
    ours, _ = comfy.workflow_prompt(workflow)
    assert theirs == json.loads(json.dumps(ours))


def test_a_run_shows_scores_on_the_nodes(comfy, page):
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    for n in workflow["nodes"]:  # a size of its own, so nothing is served from the cache
        if n["type"] == "SaitenSampleImages":
            n["widgets_values"] = [264]
    page.evaluate(f"window.app.loadGraphData({json.dumps(workflow)})")
    before = set(comfy.get("/history"))
    page.evaluate("window.app.queuePrompt(0, 1).then(() => true)")
    deadline = time.monotonic() + 120
    entry = None
    while time.monotonic() < deadline and entry is None:
        new = {k: v for k, v in comfy.get("/history").items() if k not in before}
        entry = next((v for v in new.values() if v.get("status", {}).get("status_str")), None)
        time.sleep(0.2)
    assert entry and entry["status"]["status_str"] == "success"
    page.wait_for("""window.app.graph.nodes.some(n =>
        n.type === 'SaitenSaveImage' && Array.isArray(n.saitenBadges))""", 30)
    nodes = page.evaluate("""window.app.graph.nodes.map(n => ({
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
    assert not [e for e in page.errors if "saiten" in (e or "").lower()], page.errors
