"""Never fail open (issue G.1), in a real ComfyUI with the judge pointed at the fault server
on 127.0.0.1: NudeNet + technical check + judge → aggregate → filter (overall ≥ 60, unscored
blocked) → save. What is saved with the judge down is compared with the judge up: an outage,
an answer without `overall` or a judge with nothing to read never lets more images through,
and the verdict says which source was missing and why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from comfy_harness import REPO, nudenet_tagger, on_start
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY, FakeAPI

THRESHOLD = 60.0  # the fault server's judge answers overall 65
N_SAMPLES = len([p for p in (REPO / "samples").iterdir() if p.suffix in (".png", ".jpg")])


@on_start
def _key(models_dir: Path, env: dict[str, str]) -> None:
    env["XAI_API_KEY"] = FAKE_KEY


def graph(url: str, prefix: str, *, judge_reads: str = "tagger", min_confidence: float = 0.0,
          unscored: str = "block", **judge) -> dict:
    """The judged workflow; `judge_reads="nothing"` feeds the judge only the technical check
    of the good images (no tags, no comments) while NudeNet goes straight to the aggregate."""
    prior = ["3", 0] if judge_reads == "tagger" else ["9", 0]
    return {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 96}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
        "9": {"class_type": "SaitenTechnicalCheck", "inputs": {"images": ["1", 0]}},
        "4": {"class_type": "SaitenGrokJudge", "inputs": {
            "scores": prior, "base_url": url, "model": "grok-fake", "key_env": "XAI_API_KEY",
            "temperature": 0.2, "timeout": 5.0, "max_calls": 50, "max_usd": 1.0,
            "force": True, "geval_samples": 0, "band_lo": 0.0, "band_hi": 100.0, "top_k": 0,
            "weight": 1.1, **judge}},
        "6": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": ["4", 0], **({"scores.scores1": ["2", 0]}
                                           if judge_reads != "tagger" else {}),
            "min_sources": 2, "k": 2.5, "weights": "grok=1.1"}},
        "7": {"class_type": "SaitenScoreFilter", "inputs": {
            "images": ["1", 0], "verdicts": ["6", 0], "axis": "overall", "mode": "threshold",
            "threshold": THRESHOLD, "top_k": 4, "unscored": unscored, "keep_best": False,
            "min_confidence": min_confidence}},
        "8": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["7", 0], "verdicts": ["7", 2], "filename_prefix": prefix}},
        "10": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["7", 1], "verdicts": ["7", 3], "filename_prefix": f"{prefix}_rejected"}},
    }


@pytest.fixture
def judge_server():
    """A fault server of each test's own: the outages scripted here stay out of the other
    tests (the server's circuit breaker remembers a failing host across prompts)."""
    server = FakeAPI()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fakeapi(judge_server):
    judge_server.script()
    return judge_server


def saved(h) -> list[Path]:
    return h.files("8")


def verdicts(h, node: str = "10") -> list[dict]:
    out = []
    for png in h.files(node):
        with PILImage.open(png) as im:
            out.append(json.loads(dict(im.text)["saiten"]))
    return out


def test_min_confidence_rejects_a_lone_voter(comfy, fakeapi):
    lax = comfy.run(graph(fakeapi.url, "conf_lax", min_confidence=0.4, weight=1.02))
    strict = comfy.run(graph(fakeapi.url, "conf_strict", min_confidence=0.6, weight=1.03))
    assert saved(lax) and not saved(strict)  # the judge alone on overall: confidence ≤ 0.5
    assert "confidence ≥ 0.6" in strict.text("7") and "(confidence 0.50)" in strict.text("7")
    for v in verdicts(lax, "8"):
        assert v["confidences"]["overall"] <= 0.5 and v["confidence"] < 1.0


def test_judge_down_never_saves_more_than_judge_up(comfy, fakeapi):
    up = comfy.run(graph(fakeapi.url, "up"))
    n_up = len(saved(up))
    assert n_up > 0, up.text("7")  # the good sample photos: 65 − 0 ≥ 60
    assert "grok" in up.text("6")

    outages = {  # the 500s last: they open the server's circuit breaker
        "no_overall": {"kind": "ok", "content": json.dumps(
            {"erotic": 60, "composition": 55, "comment": "総合点なし"})},
        "junk": {"kind": "junk"},
        "http500": {"kind": "status", "code": 500, "message": "upstream down"},
    }
    why = {}
    for n, (name, action) in enumerate(outages.items()):
        fakeapi.script(default=action)
        down = comfy.run(graph(fakeapi.url, f"down_{name}", weight=1.0 + n / 100))
        assert len(saved(down)) <= n_up, (name, down.text("7"))
        assert saved(down) == [], (name, down.text("7"))  # none of them has an overall
        rejected = verdicts(down)
        assert rejected and all(v["score"] is None and v["axes"]["overall"] is None
                                for v in rejected), name
        for v in rejected:  # which source was missing, and why
            assert "grok" in v["missing"]["overall"] and "grok" in v["unscored"], v
            assert v["axes"]["erotic"] is not None  # NudeNet's own axis keeps its value
        assert "unscored" in down.text("7") and "grok" in down.text("7")
        why[name] = json.dumps(rejected, ensure_ascii=False)
    assert "500" in why["http500"] and "upstream down" in why["http500"]

    # the unscored policy is the user's: "pass" lets them through, still without a score
    fakeapi.script(default=outages["http500"])
    passing = comfy.run(graph(fakeapi.url, "down_pass", unscored="pass", weight=0.9))
    assert len(saved(passing)) == N_SAMPLES


def test_a_judge_with_nothing_to_read_abstains_visibly(comfy, fakeapi):
    h = comfy.run(graph(fakeapi.url, "nothing", judge_reads="nothing", weight=1.05))
    assert "nothing to judge" in h.text("4")
    assert "nothing to judge" in h.text("6") and "nothing to judge" in h.text("7")
    # the broken samples' technical findings are something to read; the good photos are not
    for v in verdicts(h):
        if v["score"] is None:
            assert "nothing to judge" in v["missing"]["overall"]
    assert all("nothing to judge" not in json.dumps(v) for v in verdicts(h, "8"))
    assert len(saved(h)) == 0  # the judged images are the broken ones: below the threshold


def test_offline_default_keeps_a_technical_only_overall(comfy):
    g = {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 88}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
        "6": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": ["3", 0], "min_sources": 2, "k": 2.5, "weights": ""}},
        "7": {"class_type": "SaitenScoreFilter", "inputs": {
            "images": ["1", 0], "verdicts": ["6", 0], "axis": "overall", "mode": "threshold",
            "threshold": 85.0, "top_k": 4, "unscored": "block", "keep_best": False}},
        "8": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["7", 0], "verdicts": ["7", 2], "filename_prefix": "offline_tech"}},
    }
    h = comfy.run(g)
    kept = verdicts(h, "8")
    assert 0 < len(kept) < N_SAMPLES  # the broken samples are dropped, the photos kept
    for v in kept:
        assert v["score"] == 100.0 and v["missing"] == {} and v["confidences"]["overall"] == 0.5
