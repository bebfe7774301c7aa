"""Hostile and broken inputs in a real ComfyUI (issue G.5, G.6): the aggregate's calibration
widget reads only inside ComfyUI's user directory and never echoes a file into /history or
the websocket; images that ComfyUI's own LoadImage loads broken (a PNG cut at half its rows,
pure noise) are caught by the technical check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
from comfy_harness import nudenet_tagger
from graphs import technical_graph
from PIL import Image as PILImage

SECRET = "hf_SAITENCALIBRATIONSECRET42"


def aggregate(calibration: str) -> dict:
    return {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 72}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
        "6": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": ["3", 0], "min_sources": 2, "k": 2.5, "weights": "",
            "calibration": calibration}},
        "7": {"class_type": "SaitenShowScores", "inputs": {"verdicts": ["6", 0]}},
    }


def refused(comfy, calibration: str) -> str:
    """The error the aggregate shows for `calibration`, checked in /history and on the
    websocket: it never carries the secret any file holds."""
    with comfy.watch() as ev:
        h = comfy.run(aggregate(calibration), check=False)
        msg = ev.wait_for(lambda m: m["type"] == "execution_error", timeout=30)
    assert not h.ok
    err = (h.message("execution_error") or {}).get("exception_message", "")
    assert err == msg["data"]["exception_message"]
    entry = json.dumps(comfy.get(f"/history/{h.prompt_id}"))
    assert SECRET not in entry and SECRET not in json.dumps(msg)
    return err


@pytest.fixture(scope="module")
def files(comfy):
    user, outside = comfy.base / "user", comfy.base / "outside"
    outside.mkdir(exist_ok=True)
    secret = json.dumps([{"source": SECRET, "axis": "x", "slope": "1", "intercept": 0}])
    (outside / "real.json").write_text(secret, encoding="utf-8")
    (user / "bad.json").write_text(secret, encoding="utf-8")
    (user / "notjson.json").write_text(f"{SECRET}!", encoding="utf-8")
    for name, target in (("out.json", "real.json"), ("gone.json", "none.json")):
        if not (user / name).is_symlink():
            (user / name).symlink_to(outside / target)
    return user, outside


def test_the_calibration_widget_reads_only_the_user_directory(comfy, files):
    _, outside = files
    for real in (str(outside / "real.json"), "../outside/real.json",
                 "calibrations/../../outside/real.json"):
        a = refused(comfy, real)
        b = refused(comfy, real.replace("real.json", "none.json"))
        assert "relative to ComfyUI's user directory" in a
        assert a.replace("real", "X") == b.replace("none", "X")  # nothing says what exists
    a, b = refused(comfy, "out.json"), refused(comfy, "gone.json")
    assert "leads outside ComfyUI's user directory" in a
    assert a.replace("'out.json'", "X") == b.replace("'gone.json'", "X")


def test_a_bad_calibration_file_is_named_never_quoted(comfy, files):
    assert "bad.json: entry 1 is not" in refused(comfy, "bad.json")
    assert "notjson.json: not calibration JSON (line 1" in refused(comfy, "notjson.json")
    assert "not found: nope/cal.json in ComfyUI's user directory" in refused(comfy,
                                                                              "nope/cal.json")


def test_images_loadimage_loads_broken_are_caught(comfy):
    photo = skimage.data.chelsea()
    PILImage.fromarray(photo).save(comfy.input_dir / "saiten_good.png")
    data = (comfy.input_dir / "saiten_good.png").read_bytes()
    (comfy.input_dir / "saiten_half.png").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(0)
    noise = (rng.random((384, 512, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(noise).save(comfy.input_dir / "saiten_noise.png")
    g = {**technical_graph("saiten_good.png", 10), **technical_graph("saiten_half.png", 20),
         **technical_graph("saiten_noise.png", 30)}
    h = comfy.run(g)
    assert "partially decoded" not in h.text("11") and "noise" not in h.text("11")
    assert h.text("12").startswith("#0 100.0")
    assert "partially decoded: the bottom" in h.text("21") and "RGB 0, 0, 0" in h.text("21")
    assert h.text("22").startswith("#0 unscored: technical: partially decoded")  # broken
    assert "pure noise" in h.text("31") and h.text("32").startswith("#0 20.0")
