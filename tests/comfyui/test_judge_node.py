"""SaitenGrokJudge in a real ComfyUI, pointed at the fake OpenAI-compatible server on
127.0.0.1: Tagger + Technical check → Judge → Aggregate → Filter → Save. The judge's cards
flow on, cost and cache live in the user directory, and neither the key nor an image reaches
the server (on this machine it gets no key at all), the saved PNG, the history or the log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from comfy_harness import nudenet_tagger, on_start
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY, assert_no_secret

pytest_plugins = ["helpers.fixtures_http"]


@on_start
def _key(models_dir: Path, env: dict[str, str]) -> None:
    env["XAI_API_KEY"] = FAKE_KEY  # the judge's key lives only in the server's environment


def judge_inputs(url: str, **kw) -> dict:
    return {"base_url": url, "model": "grok-fake", "key_env": "XAI_API_KEY",
            "temperature": 0.2, "timeout": 5.0, "max_calls": 20, "max_usd": 1.0,
            "force": False, "geval_samples": 0, "band_lo": 0.0, "band_hi": 100.0,
            "top_k": 0, "weight": 1.1, **kw}


def graph(url: str, *, prefix: str = "judged", **kw) -> dict:
    return {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 128}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
        "4": {"class_type": "SaitenGrokJudge",
              "inputs": {"scores": ["3", 0], **judge_inputs(url, **kw)}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 1]}},
        "6": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": ["4", 0], "min_sources": 2, "k": 2.5,
            "weights": "grok=1.1"}},
        "7": {"class_type": "SaitenScoreFilter", "inputs": {
            "images": ["1", 0], "verdicts": ["6", 0], "axis": "overall", "mode": "threshold",
            "threshold": 0.0, "top_k": 4, "unscored": "pass", "keep_best": False}},
        "8": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["7", 0], "verdicts": ["7", 2], "filename_prefix": prefix}},
    }


def test_judge_node_in_a_real_comfyui_workflow(comfy, fakeapi):
    info = comfy.object_info["SaitenGrokJudge"]
    assert "key_env" in info["input"]["required"]
    assert not [k for k in info["input"]["required"] if "api_key" in k]  # no key widget
    cost = comfy.base / "user" / "saiten" / "judge_cost.jsonl"
    earlier = len(cost.read_text().splitlines()) if cost.exists() else 0  # other tests' calls
    h = comfy.run(graph(fakeapi.url))
    n_images = len(comfy.get(f"/history/{h.prompt_id}")[h.prompt_id]["outputs"]["8"]["images"])
    reqs = fakeapi.requests()
    assert 0 < len(reqs) <= 8 and n_images > 0
    for req in reqs:  # text only, key only in the Authorization header
        assert "image_url" not in req["body"] and "base64" not in req["body"]
        assert "[nudenet]" in req["body"] or "[technical]" in req["body"]
        assert_no_secret(req["body"])
    for req in reqs:  # a server on this machine gets no key at all (keys bind to hosts)
        assert "authorization" not in {k.lower() for k in req["headers"]}
    assert f"{len(reqs)} calls" in h.text("4") and "grok:" in h.text("4")
    assert "[user]" in h.text("5") and "Score the image on the rubric" in h.text("5")
    assert "grok" in h.text("6")  # the judge voted in the ensemble
    records = [json.loads(x) for x in cost.read_text().splitlines()[earlier:]]
    assert len([r for r in records if not r["cache_hit"]]) == len(reqs)  # identical prompts
    judged = len(records)  # of two identical images, the second is a cache hit
    assert (comfy.base / "user" / "saiten" / "prices.json").is_file()
    pngs, voted = h.files("8"), 0
    assert pngs
    for png in pngs:
        with PILImage.open(png) as im:
            text = dict(im.text)
        meta = json.dumps(text, ensure_ascii=False)
        assert "SaitenGrokJudge" in meta and "XAI_API_KEY" in meta  # the name, never the key
        assert_no_secret(meta)
        voted += "grok" in json.loads(text["saiten"])["used"]
    assert voted == judged  # the judge's vote is in the saved verdicts
    assert_no_secret(comfy.get(f"/history/{h.prompt_id}"), h.text("4"), cost.read_text(),
                     comfy.log(200_000))

    again = comfy.run(graph(fakeapi.url, weight=1.0, prefix="again"))  # re-runs the judge
    assert len(fakeapi.requests()) == len(reqs)  # answered from the cache: no new call
    assert f"0 calls, {judged} cache hits" in again.text("4")


def test_a_key_pasted_into_key_env_is_refused_without_echoing_it(comfy, fakeapi):
    pasted = FAKE_KEY.replace("-", "_")
    h = comfy.run(graph(fakeapi.url, key_env=pasted), check=False)
    assert not h.ok and fakeapi.requests() == []
    err = (h.message("execution_error") or {}).get("exception_message", "")
    assert "NAME of an environment variable" in err and pasted not in err


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1"])  # nothing listens on port 9
def test_an_unreachable_judge_abstains_and_the_workflow_still_saves(comfy, url):
    h = comfy.run(graph(url, timeout=1.0, force=True, prefix="offline"))
    assert "connection failed" in h.text("4") or "skipped" in h.text("4")
    assert h.files("8")  # nudenet + technical still score; the judge is absent, not 0
