"""The Saiten Tagger node in a real headless ComfyUI: WD- and CL-format models placed in the
folder registered through extra_model_paths.yaml, chained, and a second run reusing the
sessions. Skips loudly when no ComfyUI is found ($COMFYUI_PATH, else ~/comfy/ComfyUI)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, build_wd, cl_tags, wd_tags

ROOT = Path(__file__).resolve().parents[2]
COMFY = Path(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")).expanduser()

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    if not (COMFY / "main.py").is_file():
        pytest.skip(f"NO ComfyUI at {COMFY} (set COMFYUI_PATH): the node tests did not run")
    base = tmp_path_factory.mktemp("comfy")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-Saiten").symlink_to(ROOT)
    elsewhere = base / "elsewhere" / "taggers"
    n = len(wd_tags())
    wd_w = np.zeros((3, n), np.float32)
    wd_w[2, 4] = 10            # "red" (general) from the R mean of the BGR input
    build_wd(elsewhere / "wd-tiny", wd_tags(), wd_w, np.full(n, -5.0))
    m = len(cl_tags())
    cl_w = np.zeros((3, m), np.float32)
    cl_w[0, 0] = 10            # "red" from the R mean of the normalised RGB input
    build_cl(elsewhere / "cl-tiny", cl_tags(), cl_w, np.zeros(m))
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"saiten:\n  base_path: {base / 'elsewhere'}\n  saiten_tagger: taggers\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(base / "comfy.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--disable-auto-launch", "--base-directory", str(base),
         "--extra-model-paths-config", str(yaml)],
        cwd=COMFY, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _get(url + "/system_stats")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("ComfyUI exited: " + (base / "comfy.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run(url: str, graph: dict) -> dict:
    pid = _post(url + "/prompt", {"prompt": graph})["prompt_id"]
    for _ in range(240):
        hist = _get(f"{url}/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            return hist[pid]
        time.sleep(0.5)
    pytest.fail("prompt did not finish")


def _graph(threshold: float) -> dict:
    tagger = {"general_threshold": threshold, "character_threshold": 0.0,
              "threshold_mode": "fixed", "batch_size": 2, "allow_download": False,
              "keep_loaded": True, "weight": 0.0, "label": ""}
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 48, "batch_size": 3, "color": 0xFF0000}},
        "2": {"class_type": "SaitenTagger",
              "inputs": {"images": ["1", 0], "model": "wd-tiny", **tagger}},
        "3": {"class_type": "SaitenTagger",
              "inputs": {"images": ["1", 0], "model": "cl-tiny", "scores": ["2", 0], **tagger}},
        "4": {"class_type": "SaitenTagger",
              "inputs": {"images": ["1", 0], "model": "nudenet (offline)", "scores": ["3", 0],
                         **tagger}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }


def test_tagger_models_in_registered_folder_run_and_reuse_sessions(comfy):
    url, _ = comfy
    spec = _get(url + "/object_info/SaitenTagger")["SaitenTagger"]["input"]["required"]["model"]
    choices = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
    assert {"nudenet (offline)", "wd-tiny", "cl-tiny"} <= set(choices)
    assert "SaitenTechnicalCheck" in _get(url + "/object_info")

    first = _run(url, _graph(0.0))
    assert first["status"]["status_str"] == "success", first["status"]
    out = first["outputs"]
    wd_text, cl_text = out["2"]["text"][0], out["3"]["text"][0]
    assert "on CPU" in wd_text and "session new" in wd_text and "3 images" in wd_text
    assert "#0 erotic=" in wd_text and "red" in wd_text
    assert "overall=" in cl_text and "red" in cl_text
    assert out["5"]["text"] and "red" in out["5"]["text"][0]
    scores_text = out["6"]["text"][0]
    assert "wd" in scores_text and "cl" in scores_text and "nudenet" in scores_text

    second = _run(url, _graph(0.5))          # a changed widget re-runs the taggers
    assert second["status"]["status_str"] == "success"
    assert "session reused" in second["outputs"]["2"]["text"][0]
    assert "session reused" in second["outputs"]["3"]["text"][0]


def test_missing_model_is_a_message_on_the_node_not_a_failure(comfy):
    url, _ = comfy
    graph = _graph(0.0)
    graph["2"]["inputs"]["model"] = "wd-vit-tagger-v3"       # known, not present, no download
    res = _run(url, graph)
    assert res["status"]["status_str"] == "success", res["status"]
    text = res["outputs"]["2"]["text"][0]
    assert "put model.onnx and selected_tags.csv in" in text


def test_node_and_cli_give_a_model_the_same_defaults(comfy):
    """Thresholds and weight come from the catalogue for the node and the CLI alike."""
    from scoring.cli.score import make_sources

    url, base = comfy
    graph = _graph(0.0)
    graph["6"]["inputs"]["source"] = ["2", 0]  # the WD tagger's own cards, default widgets
    res = _run(url, graph)
    assert res["status"]["status_str"] == "success", res["status"]
    node_cards = res["outputs"]["6"]["text"][0]
    (wd,) = make_sources(["wd"], lambda _: None,
                         {"wd": {"model_path": str(base / "elsewhere" / "taggers" / "wd-tiny")}})
    red = np.zeros((48, 64, 3), np.float32)
    red[..., 0] = 1.0
    (card,) = wd.score([red])[0]
    assert card.weight == 0.8 and f"weight={card.weight}" in node_cards, node_cards
    assert f"'thresholds': {card.extras['thresholds']}" in node_cards, node_cards
