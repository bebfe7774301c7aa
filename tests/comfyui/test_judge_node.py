"""SaitenGrokJudge in a real ComfyUI, pointed at the fake OpenAI-compatible server on
127.0.0.1: the graph runs, the judge's cards flow on, cost and cache live in the user
directory, and neither the key nor an image reaches the server, the PNG or the history."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

pytest.importorskip("comfy_harness", reason="the real-ComfyUI harness (tests/comfyui) is missing")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from fakeapi import FAKE_KEY, assert_no_secret

pytest_plugins = ["fixtures_http"]

# The ComfyUI subprocess inherits the environment at start-up (after collection).
os.environ["XAI_API_KEY"] = FAKE_KEY


def judge_inputs(url: str, **kw) -> dict:
    return {"base_url": url, "model": "fake-judge", "key_env": "XAI_API_KEY",
            "temperature": 0.2, "timeout": 5.0, "max_calls": 10, "max_usd": 1.0,
            "force": False, "geval_samples": 0, "band_lo": 0.0, "band_hi": 100.0,
            "top_k": 0, "weight": 1.1, **kw}


def graph(url: str, **kw) -> dict:
    return {
        "6": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "7": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xFFFFFF}},
        "1": {"class_type": "ImageBatch", "inputs": {"image1": ["6", 0], "image2": ["7", 0]}},
        "2": {"class_type": "SaitenTechnicalCheck", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SaitenGrokJudge",
              "inputs": {"scores": ["2", 0], **judge_inputs(url, **kw)}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "judged"}},
    }


def test_judge_node_in_a_real_comfyui(comfy, fakeapi):
    info = comfy.object_info["SaitenGrokJudge"]
    assert "key_env" in info["input"]["required"]
    assert not any("api_key" == k for k in info["input"]["required"])  # no key widget
    h = comfy.run(graph(fakeapi.url))
    bodies = fakeapi.requests()
    assert len(bodies) == 2  # one text-only call per image
    for req in bodies:
        assert "image_url" not in req["body"] and "base64" not in req["body"]
        assert_no_secret(req["body"])
    shown = comfy.get(f"/history/{h.prompt_id}")
    assert "2 calls, 0 cache hits" in h.text("3")
    assert "[user]" in h.text("4") and "Score the image on the rubric" in h.text("4")
    cost = comfy.base / "user" / "saiten" / "judge_cost.jsonl"
    records = [json.loads(x) for x in cost.read_text().splitlines()]
    assert [r["cache_hit"] for r in records] == [False, False]
    (png,) = h.files("5")[:1]
    with PILImage.open(png) as im:
        meta = json.dumps(im.info, default=str)
    assert "SaitenGrokJudge" in meta and "XAI_API_KEY" in meta  # the name, never the key
    assert_no_secret(meta, shown, h.text("3"), cost.read_text(), comfy.log())

    again = comfy.run(graph(fakeapi.url, weight=1.0))  # re-executes; the cache answers
    assert len(fakeapi.requests()) == 2 and "0 calls, 2 cache hits" in again.text("3")


def test_a_key_pasted_into_key_env_is_refused_without_echoing_it(comfy, fakeapi):
    h = comfy.run(graph(fakeapi.url, key_env=FAKE_KEY.replace("-", "_")), check=False)
    assert not h.ok and fakeapi.requests() == []
    err = h.message("execution_error") or {}
    assert "NAME of an environment variable" in err.get("exception_message", "")
    assert FAKE_KEY.replace("-", "_") not in err.get("exception_message", "")
