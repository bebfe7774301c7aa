"""The example workflow, the ensemble/filter/report nodes and the memory stand-in in a real,
headless ComfyUI, driven only through its HTTP API (as the frontend does)."""

from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import PACK_NAME, REPO, on_start
from helpers.reports import page_data
from PIL import Image

WORKFLOW = REPO / "example_workflows" / "saiten_offline_filter.json"
THRESHOLD = 85.0  # the example's filter threshold
SAMPLES = sorted(p.name for p in (REPO / "samples").iterdir()
                 if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
BROKEN = [s for s in SAMPLES if s.startswith("broken_")]  # black, blurred, washed out

SAITEN_NODES = {
    "SaitenTagger", "SaitenTechnicalCheck", "SaitenEnsembleAggregate", "SaitenScoreFilter",
    "SaitenShowScores", "SaitenSaveImage", "SaitenBatchReport", "SaitenSampleImages",
    "SaitenVLMLoader", "SaitenVLMRater", "SaitenGrokJudge", "SaitenRubric",
    "SaitenDiagnostics",
}


@on_start
def _mark(models_dir: Path, env: dict[str, str]) -> None:
    (models_dir / "saiten_test").mkdir(parents=True, exist_ok=True)
    (models_dir / "saiten_test" / "marker.txt").write_text("built before start")
    env["SAITEN_HARNESS_MARK"] = "on"


def test_start_hooks_ran_before_the_server(comfy):
    assert (comfy.models_dir / "saiten_test" / "marker.txt").read_text() == "built before start"
    assert comfy.get("/saiten_test/env?name=SAITEN_HARNESS_MARK") == {"value": "on"}


@pytest.fixture(scope="module")
def example(comfy):
    """(API prompt, UI workflow) of the shipped example, converted with /object_info."""
    return comfy.workflow_prompt(WORKFLOW)


def node_of(prompt: dict, class_type: str) -> str:
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type]
    assert len(ids) == 1, f"expected one {class_type} in the workflow, found {ids}"
    return ids[0]


def variant(prompt: dict, **changes: dict) -> dict:
    """A copy of `prompt` with widget values changed per class type."""
    p = copy.deepcopy(prompt)
    for class_type, values in changes.items():
        p[node_of(p, class_type)]["inputs"].update(values)
    return p


def new_files(comfy, before: set[Path]) -> list[Path]:
    return sorted(set(comfy.output_dir.rglob("*.png")) - before)


def png_scores(path: Path) -> tuple[dict, dict]:
    with Image.open(path) as im:
        im.load()
        text = dict(im.text)
    return json.loads(text["saiten"]), text


def is_black(path: Path) -> bool:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32)
    h, w = a.shape[:2]
    return float(a[h // 4: 3 * h // 4, w // 4: 3 * w // 4].max()) < 8


# -- registration ---------------------------------------------------------------------------
def test_every_saiten_node_is_registered(comfy):
    info = comfy.object_info
    ours = {k for k, v in info.items() if v.get("python_module", "").endswith(PACK_NAME)}
    assert SAITEN_NODES <= ours, f"missing: {sorted(SAITEN_NODES - ours)}"
    assert all(k.startswith("Saiten") for k in ours)
    bad = [ln for ln in comfy.log(10**7).splitlines()
           if ("saiten" in ln and "failed to import" in ln)
           or ("Cannot import" in ln and f"custom_nodes/{PACK_NAME}" in ln)]
    assert not bad, comfy.log()
    agg = info["SaitenEnsembleAggregate"]
    assert agg["input"]["required"]["scores"][0] == "COMFY_AUTOGROW_V3"
    assert agg["output"] == ["SAITEN_VERDICTS", "FLOAT", "FLOAT"]
    assert agg["output_is_list"] == [False, False, True]
    flt = info["SaitenScoreFilter"]
    assert flt["output"] == ["IMAGE", "IMAGE", "SAITEN_VERDICTS", "SAITEN_VERDICTS",
                             "LATENT", "LATENT", "SAITEN_VERDICTS", "IMAGE", "SAITEN_VERDICTS"]
    assert flt["input"]["required"]["axis"][1]["options"] == [
        "overall", "erotic", "composition", "appeal", "typeset", "likeness", "confidence"]
    for out_node in ("SaitenShowScores", "SaitenSaveImage", "SaitenBatchReport"):
        assert info[out_node]["output_node"] is True


def test_example_workflows_are_listed_as_templates(comfy):
    listed = comfy.get("/workflow_templates").get(PACK_NAME, [])
    assert {"saiten_offline_filter", "saiten_overnight_report"} <= set(listed)
    served = comfy.get(f"/api/workflow_templates/{PACK_NAME}/saiten_offline_filter.json")
    assert served == json.loads(WORKFLOW.read_text(encoding="utf-8"))


# -- the example workflow -------------------------------------------------------------------
def test_example_workflow_filters_and_saves_scores(comfy, example):
    prompt, workflow = example
    before = set(comfy.output_dir.rglob("*.png"))
    h = comfy.run(prompt, workflow=workflow, timeout=300)
    saved = new_files(comfy, before)
    rejected = h.files(node_of(prompt, "PreviewImage"), kind="temp")
    assert saved == sorted(h.files(node_of(prompt, "SaitenSaveImage")))
    # the clean photos are saved, the broken samples are blocked
    assert len(saved) == len(SAMPLES) - len(BROKEN) and len(rejected) == len(BROKEN)
    for f in saved:  # every saved image carries its verdict, above the threshold
        d, text = png_scores(f)
        assert d["score"] is not None and d["score"] >= THRESHOLD, d
        assert float(text["saiten_score"]) == pytest.approx(d["score"], abs=0.05)
        assert {"nudenet", "technical"} <= set(d["sources"]) and d["used"]
        assert "penalty" not in d["sources"]["technical"]  # no technical finding
        assert json.loads(text["prompt"]) == json.loads(json.dumps(prompt))  # ComfyUI's own
        assert json.loads(text["workflow"])["nodes"]                         # chunks too
        assert not is_black(f)
    assert sum(is_black(f) for f in rejected) == 1  # the broken black frame is caught
    text = h.text(node_of(prompt, "SaitenShowScores"))
    lines = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert len(lines) == len(SAMPLES) and "used: nudenet, technical" in lines[0]
    for i, name in enumerate(SAMPLES):  # each broken sample's line says what is wrong
        if name in BROKEN:
            assert any(w in lines[i] for w in ("black", "blurry", "contrast")), lines[i]
    flt = h.text(node_of(prompt, "SaitenScoreFilter"))
    assert flt.startswith(f"passed {len(saved)}/{len(SAMPLES)}")
    ui = h.ui(node_of(prompt, "SaitenSaveImage"))  # what the web extension draws
    assert [b["score"] for b in ui["saiten"]] == [
        pytest.approx(png_scores(f)[0]["score"], abs=0.05) for f in saved]


def test_nothing_passes_still_succeeds_and_saves_nothing(comfy, example):
    prompt, workflow = example
    p = variant(prompt, SaitenScoreFilter={"axis": "erotic", "threshold": 99.5})
    # a core SaveImage on the blocked side too: it must be skipped, not crash on 0 images
    p["90"] = {"class_type": "SaveImage",
               "inputs": {"images": [node_of(p, "SaitenScoreFilter"), 0],
                          "filename_prefix": "saiten/core_passed"}}
    before = set(comfy.output_dir.rglob("*.png"))
    h = comfy.run(p, workflow=workflow)
    assert h.ok and h.message("execution_error") is None
    assert new_files(comfy, before) == []
    assert h.ui(node_of(p, "SaitenSaveImage")) == {} and h.ui("90") == {}
    assert len(h.files(node_of(p, "PreviewImage"), kind="temp")) == len(SAMPLES)
    assert h.text(node_of(p, "SaitenScoreFilter")).startswith(f"passed 0/{len(SAMPLES)}")
    # the queue carries on
    assert comfy.run(variant(p, SaitenSaveImage={"filename_prefix": "saiten/after"})).ok


# -- filter modes (real verdicts from the offline sources) ------------------------------------
def small(prompt: dict, size: int = 128, **changes: dict) -> dict:
    """The example at `size` px (fast), with more changes. ComfyUI caches nodes whose inputs
    did not change (and then reports no UI output for them): a test that reads a node's text
    uses a size of its own so everything runs."""
    return variant(prompt, SaitenSampleImages={"size": size}, **changes)


@pytest.mark.parametrize(("changes", "expect"), [
    ({"mode": "top_k", "top_k": 2}, 2),
    ({"mode": "top_k", "top_k": 0, "keep_best": True}, 1),
    ({"axis": "erotic", "threshold": 99.5, "keep_best": True}, 1),
    ({"axis": "confidence", "threshold": 0.0}, len(SAMPLES)),
])
def test_filter_modes(comfy, example, changes, expect):
    prompt, _ = example
    p = small(prompt, SaitenScoreFilter=changes,
              SaitenSaveImage={"filename_prefix": f"modes/{time.monotonic_ns()}"})
    h = comfy.run(p)
    saved = h.files(node_of(p, "SaitenSaveImage"))
    assert len(saved) == expect
    if changes.get("mode") == "top_k" and expect:
        scores = sorted(png_scores(f)[0]["score"] for f in saved)
        rejected_text = h.text(node_of(p, "SaitenScoreFilter")).splitlines()[2]
        worst_saved = scores[0]
        for tag in rejected_text.removeprefix("rejected: ").split(", "):
            assert float(tag.split()[1]) <= worst_saved + 0.5


@pytest.mark.parametrize(("policy", "expect"), [("pass", len(SAMPLES)), ("block", 0)])
def test_unscored_policy(comfy, example, policy, expect):
    prompt, _ = example
    p = small(prompt, 112 if policy == "pass" else 104,
              SaitenEnsembleAggregate={"min_sources": 3},  # only 2 sources: unscored
              SaitenScoreFilter={"unscored": policy},
              SaitenSaveImage={"filename_prefix": f"unscored_{policy}"})
    h = comfy.run(p)
    assert len(h.files(node_of(p, "SaitenSaveImage"))) == expect
    assert "unscored" in h.text(node_of(p, "SaitenShowScores"))
    agg_text = h.text(node_of(p, "SaitenEnsembleAggregate"))
    assert all("unscored" in ln for ln in agg_text.splitlines() if ln.startswith("#"))


def test_filter_refuses_verdicts_of_another_batch(comfy, example):
    prompt, _ = example
    p = small(prompt)
    p["91"] = {"class_type": "ImageFromBatch",
               "inputs": {"image": [node_of(p, "SaitenSampleImages"), 0],
                          "batch_index": 0, "length": 3}}
    p[node_of(p, "SaitenScoreFilter")]["inputs"]["images"] = ["91", 0]
    h = comfy.run(p, check=False)
    err = h.message("execution_error")
    assert h.status == "error" and err["node_type"] == "SaitenScoreFilter"
    assert "the batch has 3 images but verdicts are for" in err["exception_message"]


def test_aggregate_takes_several_score_inputs_and_rejects_bad_weights(comfy, example):
    prompt, _ = example
    p = small(prompt, 120)
    tag, tech, agg = (node_of(p, t) for t in
                      ("SaitenTagger", "SaitenTechnicalCheck", "SaitenEnsembleAggregate"))
    chained = comfy.run(p).text(agg)
    p[tech]["inputs"].pop("scores")  # the same two sources through two Autogrow slots
    p[agg]["inputs"]["scores.scores0"] = [tag, 0]
    p[agg]["inputs"]["scores.scores1"] = [tech, 0]
    assert comfy.run(p).text(agg) == chained
    p[agg]["inputs"]["scores.scores2"] = [tag, 0]  # wired twice: still counted once
    assert comfy.run(p).text(agg) == chained
    p[agg]["inputs"]["weights"] = "wd=lots"
    h = comfy.run(p, check=False)
    err = h.message("execution_error")
    assert err["node_type"] == "SaitenEnsembleAggregate" and "wd=lots" in err["exception_message"]


# -- robustness -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["nan", "half-nan", "inf"])
def test_a_broken_image_in_the_batch_leaves_the_others_scored(comfy, example, kind):
    prompt, _ = example
    size = {"nan": 96, "half-nan": 88, "inf": 80}[kind]
    p = small(prompt, size)
    src = node_of(p, "SaitenSampleImages")
    p["92"] = {"class_type": "SaitenTestPoison",
               "inputs": {"images": [src, 0], "index": 0, "kind": kind}}
    for t in ("SaitenTagger", "SaitenTechnicalCheck", "SaitenScoreFilter"):
        p[node_of(p, t)]["inputs"]["images"] = ["92", 0]
    show = node_of(p, "SaitenShowScores")
    p[show]["inputs"]["scores"] = [node_of(p, "SaitenTechnicalCheck"), 0]
    h = comfy.run(p)
    clean = comfy.run(small(prompt, size, SaitenScoreFilter={"threshold": 1.0})).text(
        node_of(prompt, "SaitenEnsembleAggregate"))
    poisoned = h.text(node_of(p, "SaitenEnsembleAggregate"))
    # every other image scores exactly as without the broken one
    lines = [ln for ln in poisoned.splitlines() if ln.startswith("#")]
    assert lines[1:] == [ln for ln in clean.splitlines() if ln.startswith("#")][1:]
    first = lines[0]
    assert first.startswith("#0 unscored") or float(first.split()[1]) < THRESHOLD
    cards = h.text(show)
    assert any(ln.startswith("#0 technical") and "−" in ln for ln in cards.splitlines())
    assert not any(ln.startswith("#1 ") and "abstained" in ln for ln in cards.splitlines())


def test_interrupt_mid_batch_ends_cleanly_and_the_next_run_works(comfy, example):
    prompt, _ = example
    p = small(prompt, SaitenSaveImage={"filename_prefix": "interrupted"})
    src = node_of(p, "SaitenSampleImages")
    p["93"] = {"class_type": "RepeatImageBatch", "inputs": {"image": [src, 0], "amount": 60}}
    for t in ("SaitenTagger", "SaitenTechnicalCheck", "SaitenScoreFilter"):
        p[node_of(p, t)]["inputs"]["images"] = ["93", 0]
    tagger = node_of(p, "SaitenTagger")
    before = set(comfy.output_dir.rglob("*.png"))
    with comfy.watch() as events:
        pid = comfy.queue(p)
        at = events.wait_for(lambda m: m["type"] == "progress" and m["data"]["node"] == tagger
                             and m["data"]["value"] >= 16)  # mid-batch in the tagger
        comfy.interrupt()
    assert at["data"]["max"] == 60 * len(SAMPLES)
    h = comfy.wait(pid, timeout=120)
    stop = h.message("execution_interrupted")
    assert h.status == "error" and stop is not None, h.messages
    assert h.message("execution_error") is None
    assert stop["node_type"] == "SaitenTagger" and stop["node_id"] == tagger
    assert new_files(comfy, before) == []
    again = comfy.run(small(prompt, SaitenSaveImage={"filename_prefix": "after_interrupt"}))
    assert again.ok and again.files(node_of(prompt, "SaitenSaveImage"))


# -- memory ---------------------------------------------------------------------------------
def loaded(comfy) -> tuple[list[str], dict[str, bool]]:
    state = comfy.get("/saiten_test/loaded")
    models = [m["name"] for m in state["models"] if m["patcher"] == "SessionPatcher"]
    by_name: dict[str, bool] = {}  # several cached sources may share a label: any loaded?
    for s in state["sources"]:
        by_name[s["name"]] = by_name.get(s["name"], False) or s["loaded"]
    return models, by_name


def test_free_releases_our_sessions(comfy, example):
    prompt, _ = example
    comfy.run(small(prompt, 136))
    models, sources = loaded(comfy)
    assert any("nudenet" in m for m in models) and sources.get("nudenet") is True
    # the "Unload models" button
    assert comfy.free_until(lambda: not loaded(comfy)[0]), loaded(comfy)
    assert loaded(comfy)[1].get("nudenet") is False
    comfy.run(small(prompt, 144))  # loads and registers again
    models, sources = loaded(comfy)
    assert any("nudenet" in m for m in models) and sources.get("nudenet") is True
    # "Free memory" also clears the cache
    assert comfy.free_until(lambda: not loaded(comfy)[0], free_memory=True), loaded(comfy)


# -- report ---------------------------------------------------------------------------------
def test_batch_report_appends_across_runs(comfy, example):
    prompt, _ = example
    p = small(prompt)
    p["94"] = {"class_type": "SaitenBatchReport",
               "inputs": {"images": [node_of(p, "SaitenSampleImages"), 0],
                          "verdicts": [node_of(p, "SaitenEnsembleAggregate"), 0],
                          "folder": "reports/night", "title": "Night run",
                          "thumbnail_size": 64}}
    comfy.run(p)
    p["94"]["inputs"]["title"] = "Night run "  # re-run the report node only
    h = comfy.run(p)
    out = comfy.output_dir / "reports" / "night"
    rows = (out / "report.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 * len(SAMPLES)
    assert all("score" in json.loads(r) for r in rows)
    csv_lines = (out / "report.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_lines) == 1 + 2 * len(SAMPLES)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == 2 * len(SAMPLES)
    refs = [json.loads(r)["thumb"] for r in rows]  # every row's thumbnail is kept, once
    assert all((out / ref).is_file() for ref in refs)
    assert len(list((out / "thumbs").glob("*.jpg"))) == len(set(refs)) == len(SAMPLES)
    assert f"{len(SAMPLES)} added, {2 * len(SAMPLES)} in" in h.text("94")
    p["94"]["inputs"]["folder"] = "../escape"
    err = comfy.run(p, check=False).message("execution_error")
    assert err and "sub-folder of the output directory" in err["exception_message"]


def test_the_report_says_what_the_filter_decided(comfy, example):
    """A graph filtering at 75 writes a report whose "passed" is the filter's, not 60: the
    blurred sample (65) is rejected there, the washed-out one (80) passed."""
    prompt, _ = example
    p = small(prompt, 512, SaitenScoreFilter={"threshold": 75.0})  # the samples' own scores
    flt = node_of(p, "SaitenScoreFilter")
    p["96"] = {"class_type": "SaitenBatchReport",
               "inputs": {"images": [node_of(p, "SaitenSampleImages"), 0],
                          "verdicts": [flt, 6], "folder": "reports/at75", "title": "at 75",
                          "thumbnail_size": 32}}
    h = comfy.run(p)
    passed = h.text(flt).splitlines()[1].removeprefix("passed: ").split(", ")
    out = comfy.output_dir / "reports" / "at75"
    with (out / "report.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(SAMPLES) and {r["rule"] for r in rows} == {"overall ≥ 75"}
    assert [f"#{i} {float(r['score']):.0f}" for i, r in enumerate(rows)
            if r["status"] == "passed"] == passed
    scores = {name: float(r["score"]) for name, r in zip(SAMPLES, rows, strict=True)}
    status = {name: r["status"] for name, r in zip(SAMPLES, rows, strict=True)}
    assert all((status[n] == "passed") == (scores[n] >= 75) for n in SAMPLES)
    assert any(60 <= scores[n] < 75 and status[n] == "rejected" for n in SAMPLES)
    decisions = [json.loads(r)["decision"] for r in
                 (out / "report.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["status"] for d in decisions] == [r["status"] for r in rows]
    page = page_data(out / "report.html")  # what the page says: N passed (overall ≥ 75)
    assert [r["rule"] for r in page["rules"]] == ["overall ≥ 75"]
    assert sum(e["st"] == "passed" for e in page["entries"]) == len(passed)


def test_aggregate_refuses_scores_of_different_batches(comfy, example):
    prompt, _ = example
    p = small(prompt, 72)
    tag, tech, agg = (node_of(p, t) for t in
                      ("SaitenTagger", "SaitenTechnicalCheck", "SaitenEnsembleAggregate"))
    p["95"] = {"class_type": "ImageFromBatch",
               "inputs": {"image": [node_of(p, "SaitenSampleImages"), 0],
                          "batch_index": 0, "length": 3}}
    p[tech]["inputs"] = {"images": ["95", 0]}
    p[agg]["inputs"]["scores.scores0"] = [tag, 0]
    p[agg]["inputs"]["scores.scores1"] = [tech, 0]
    err = comfy.run(p, check=False).message("execution_error")
    assert err and err["node_type"] == "SaitenEnsembleAggregate"
    assert "different sizes" in err["exception_message"]


def test_overnight_example_reports_every_image_and_saves_the_best(comfy):
    prompt, workflow = comfy.workflow_prompt(REPO / "example_workflows"
                                             / "saiten_overnight_report.json")
    out = comfy.output_dir / "saiten_report"
    before = len((out / "report.jsonl").read_text().splitlines()) if out.exists() else 0
    h = comfy.run(prompt, workflow=workflow, timeout=300)
    best = h.files(node_of(prompt, "SaitenSaveImage"))
    assert len(best) == 3
    scores = sorted((png_scores(f)[0]["score"] for f in best), reverse=True)
    rows = [json.loads(r) for r in (out / "report.jsonl").read_text().splitlines()]
    assert len(rows) == before + len(SAMPLES)
    others = sorted((r["score"] or -1 for r in rows[before:]), reverse=True)
    assert scores == pytest.approx(others[:3], abs=0.05)  # the saved ones are the top 3
    shown = page_data(out / "report.html")["entries"]  # every row drawn with its thumbnail
    assert len(shown) == len(rows) and all(e["t"] for e in shown)
