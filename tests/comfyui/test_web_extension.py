"""web/saiten.js: served by a real ComfyUI, and its behaviour driven in Node.js against
stand-ins of the frontend's two shims (app.js, widgets.js) — no browser here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from comfy_harness import PACK_NAME, REPO

STUB = Path(__file__).with_name("web_stub")


def test_comfyui_serves_the_extension(comfy):
    listed = comfy.get("/extensions")
    assert f"/extensions/{PACK_NAME}/saiten.js" in listed
    served = comfy.request("GET", f"/extensions/{PACK_NAME}/saiten.js")
    served = served.decode() if isinstance(served, bytes) else served
    assert served == (REPO / "web" / "saiten.js").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def driven(tmp_path_factory) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not found: the web extension's behaviour test did not run")
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(STUB, root, dirs_exist_ok=True)
    (root / "extensions" / PACK_NAME).mkdir(parents=True)
    shutil.copy(REPO / "web" / "saiten.js", root / "extensions" / PACK_NAME / "saiten.js")
    (root / "package.json").write_text('{"type": "module"}')
    r = subprocess.run([node, str(root / "drive.mjs")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_text_shows_on_the_node_and_never_serialises(driven):
    t = driven["text"]
    assert t["value"] == "#0 80.0" and t["count"] == 1  # updated in place, one widget
    assert t["serialize"] is False and t["optionSerialize"] is False and t["readOnly"]
    assert driven["afterEmpty"] == "#0 80.0"
    assert driven["otherPatched"] is False


def test_badges_are_drawn_over_each_preview(driven):
    assert driven["gridBeforeMicrotasks"] == 0  # painted after the frontend's previews
    texts = [c[1] for c in driven["grid"] if c[0] == "text"]
    rects = [c[1:] for c in driven["grid"] if c[0] == "rect"]
    assert texts == ["72", "—"] and rects == [[4, 104], [204, 104]]
    single = driven["single"]
    assert [c[1] for c in single if c[0] == "text"] == ["—"]  # image #1 shown alone
    assert ["rect", 172, 222] in single  # a 64 px image centred in the 400×300 preview area
    assert driven["noPreview"] == [] and driven["collapsed"] == 0


def test_the_batch_report_opens_its_page(driven):
    r = driven["report"]
    assert r["buttons"] == 1 and r["serialize"] is False  # one button, never in the workflow
    assert r["label"] in ("Open the report to rate the images", "レポートを開いて評価する")
    assert r["opened"] == [["/saiten/report/night%202/report.html", "_blank", "noopener"]]
