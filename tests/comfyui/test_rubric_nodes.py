"""Saiten Rubric → VLM rater / judge, and the aggregate's calibration file, in a real ComfyUI
against the fake OpenAI-compatible server on 127.0.0.1: the custom rubric is what the server
receives, a changed rubric misses the judge's cache, and a cal.json changes the verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from comfy_harness import nudenet_tagger, on_start

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY

from scoring.core.rubric import Rubric

pytest_plugins = ["helpers.fixtures_http"]


@on_start
def _keys(models_dir: Path, env: dict[str, str]) -> None:
    env["XAI_API_KEY"] = FAKE_KEY


def rubric_node(guidance: str = "", toml: str | None = None) -> dict:
    text = toml if toml is not None else Rubric.default().to_toml().replace(
        'language = "ja"', 'language = "en"')
    return {"class_type": "SaitenRubric", "inputs": {"toml": text, "guidance": guidance}}


def sources() -> dict:
    return {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 96}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
    }


def judged(url: str, guidance: str, weight: float = 1.1) -> dict:
    return {**sources(), "4": rubric_node(guidance), "5": {
        "class_type": "SaitenGrokJudge", "inputs": {
            "scores": ["3", 0], "rubric": ["4", 0], "base_url": url, "model": "grok-fake",
            "key_env": "XAI_API_KEY", "temperature": 0.2, "timeout": 5.0, "max_calls": 20,
            "max_usd": 1.0, "force": False, "geval_samples": 0, "band_lo": 0.0,
            "band_hi": 100.0, "top_k": 0, "weight": weight}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}}}


def systems(fakeapi) -> list[str]:
    return [b["messages"][0]["content"] for b in fakeapi.bodies()]


def test_the_nodes_offer_rubric_and_calibration_inputs(comfy):
    info = comfy.object_info
    node = info["SaitenRubric"]
    assert node["category"] == "Saiten" and node["output"] == ["SAITEN_RUBRIC"]
    toml = node["input"]["required"]["toml"]
    assert toml[1]["multiline"] and toml[1]["default"] == Rubric.default().to_toml()
    assert node["input"]["optional"]["guidance"][1]["multiline"]
    for name in ("SaitenGrokJudge", "SaitenVLMRater"):
        assert info[name]["input"]["optional"]["rubric"][0] == "SAITEN_RUBRIC"
    assert "calibration" in info["SaitenEnsembleAggregate"]["input"]["optional"]


def test_a_custom_rubric_reaches_the_judge_and_a_changed_one_misses_the_cache(comfy, fakeapi):
    comfy.run(judged(fakeapi.url, "SAITEN-RUBRIC-A: 背景の「密度」を重視"))
    first = systems(fakeapi)
    assert first, "the judge made no call"
    for s in first:
        assert "Additional guidance:\nSAITEN-RUBRIC-A: 背景の「密度」を重視" in s
        assert "comment (1-2 sentences in English)" in s

    fakeapi.script()
    h = comfy.run(judged(fakeapi.url, "SAITEN-RUBRIC-B"))
    second = systems(fakeapi)
    assert len(second) == len(first), "a changed rubric must miss the cache"
    assert all("SAITEN-RUBRIC-B" in s and "SAITEN-RUBRIC-A" not in s for s in second)
    assert f"{len(second)} calls" in h.text("5")

    fakeapi.script()
    again = comfy.run(judged(fakeapi.url, "SAITEN-RUBRIC-B", weight=1.0))  # re-runs the judge
    assert fakeapi.requests() == [] and "0 calls" in again.text("5")  # same rubric: cached


def test_a_custom_rubric_reaches_the_vlm_rater(comfy, fakeapi):
    load = comfy.object_info["SaitenVLMLoader"]["input"]["required"]["model"]
    model = (load[0] if isinstance(load[0], list) else load[1]["options"])[0]
    mmproj = comfy.object_info["SaitenVLMLoader"]["input"]["required"]["mmproj"]
    auto = (mmproj[0] if isinstance(mmproj[0], list) else mmproj[1]["options"])[0]
    prompt = {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 64}},
        "2": {"class_type": "SaitenVLMLoader", "inputs": {
            "runtime": "openai-compatible", "model": model, "mmproj": auto, "dtype": "auto",
            "quantization": "none", "n_gpu_layers": -1, "chat_format": "auto",
            "base_url": fakeapi.url, "model_name": "fake-vlm", "api_key_env": "XAI_API_KEY",
            "keep_loaded": True}},
        "3": rubric_node("SAITEN-RUBRIC-VLM: 線画を見ること"),
        "4": {"class_type": "SaitenVLMRater", "inputs": {
            "images": ["1", 0], "vlm": ["2", 0], "rubric": ["3", 0], "method": "generate",
            "use_tags": True, "comment": True, "repeats": 1, "weight": 0.0, "label": ""}},
    }
    h = comfy.run(prompt)
    found = systems(fakeapi)
    assert found and all("SAITEN-RUBRIC-VLM: 線画を見ること" in s for s in found), h.text("4")
    assert h.text("4").count(": erotic=60") == 7  # every image scored


def test_bad_toml_is_a_clear_error_on_the_rubric_node(comfy, fakeapi):
    prompt = judged(fakeapi.url, "")
    prompt["4"] = rubric_node(toml='language = "en"\n[axes]\nbeauty = "x"\n')
    h = comfy.run(prompt, check=False)
    err = h.message("execution_error") or {}
    assert not h.ok and err.get("node_type") == "SaitenRubric"
    assert "Saiten Rubric: unknown rubric axes ['beauty']" in err.get("exception_message", "")
    prompt["4"] = rubric_node(toml='language = "en\n')
    err = comfy.run(prompt, check=False).message("execution_error") or {}
    assert "invalid rubric TOML" in err.get("exception_message", "")
    assert "line 1" in err.get("exception_message", "")
    assert fakeapi.requests() == []


def aggregate(calibration: str) -> dict:
    return {**sources(), "6": {"class_type": "SaitenEnsembleAggregate", "inputs": {
        "scores.scores0": ["3", 0], "min_sources": 2, "k": 2.5, "weights": "",
        "calibration": calibration}},
        "7": {"class_type": "SaitenShowScores", "inputs": {"verdicts": ["6", 0]}}}


def test_the_aggregate_applies_a_calibration_file(comfy):
    folder = comfy.base / "user" / "calibrations"
    folder.mkdir(parents=True, exist_ok=True)
    cal = [{"source": "nudenet", "axis": "erotic", "slope": 0.0, "intercept": 77.0}]
    (folder / "nudenet.json").write_text(json.dumps(cal), encoding="utf-8")

    plain = comfy.run(aggregate("")).text("6")
    text = comfy.run(aggregate("calibrations/nudenet.json")).text("6")
    lines = [x for x in text.splitlines() if x.startswith("#")]
    assert text.startswith("calibrated (nudenet.erotic) from calibrations/nudenet.json")
    assert len(lines) == 7 and all("erotic 77" in x for x in lines), text
    assert not all("erotic 77" in x for x in plain.splitlines() if x.startswith("#"))
    absolute = comfy.run(aggregate(str(folder / "nudenet.json")), check=False)
    assert not absolute.ok  # only paths relative to the user directory (issue G.5)


def test_a_missing_or_invalid_calibration_file_is_a_clear_error(comfy):
    h = comfy.run(aggregate("nope/cal.json"), check=False)
    err = (h.message("execution_error") or {}).get("exception_message", "")
    assert "calibration file not found" in err and "user directory" in err
    (comfy.base / "user" / "broken.json").write_text("[{]", encoding="utf-8")
    h = comfy.run(aggregate("broken.json"), check=False)
    err = (h.message("execution_error") or {}).get("exception_message", "")
    assert "broken.json: not calibration JSON" in err


def test_an_oversized_rubric_is_a_clear_error_before_any_call(comfy, fakeapi):
    """Issue G.7: a huge rubric never reaches the judge (nor the PNGs of a finished run)."""
    prompt = judged(fakeapi.url, "長すぎる指示。" * 40_000)  # 280,000 characters of guidance
    h = comfy.run(prompt, check=False)
    err = h.message("execution_error") or {}
    assert not h.ok and err.get("node_type") == "SaitenRubric"
    assert "rubric too long" in err.get("exception_message", "")
    assert "at most 10,000" in err.get("exception_message", "")
    assert fakeapi.requests() == []
