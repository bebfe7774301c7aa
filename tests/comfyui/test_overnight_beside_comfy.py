"""`python -m scoring score --comfy URL` beside a real ComfyUI that is busy with a long
prompt (its judge waits on a server that holds its answer until the test lets it go): the CLI
waits until the prompt has ended before it scores anything, then asks ComfyUI to free its
memory — seen on the server side, where the pack's tagger session it had kept loaded is
gone. Every step waits for an event (a request seen, a line said, a prompt ended), none for
a guessed time."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from comfy_harness import REPO, nudenet_tagger, on_start
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fakeapi, fixtures_http

from helpers.fakeapi import FAKE_KEY

pytest_plugins = ["helpers.fixtures_http"]
PATIENCE = 300.0  # the judge's timeout: far longer than the CLI needs to start and see it


@on_start
def _key(models_dir: Path, env: dict[str, str]) -> None:
    env["XAI_API_KEY"] = FAKE_KEY


def busy_graph(url: str, label: str) -> dict:
    tagger = nudenet_tagger(["1", 0])
    tagger["inputs"].update(keep_loaded=True, label=label)  # stays loaded after the prompt
    return {
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 96}},
        "2": tagger,
        "3": {"class_type": "SaitenGrokJudge", "inputs": {
            "scores": ["2", 0], "base_url": url, "model": "grok-fake", "key_env": "XAI_API_KEY",
            "temperature": 0.37, "timeout": PATIENCE, "max_calls": 20, "max_usd": 1.0,
            "force": True, "geval_samples": 0, "band_lo": 0.0, "band_hi": 100.0, "top_k": 0,
            "weight": 1.0}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
    }


def loaded_sessions(comfy) -> list[dict]:
    return [m for m in comfy.get("/saiten_test/loaded")["models"]
            if m["patcher"] == "SessionPatcher"]


def test_cli_waits_for_the_prompt_then_frees_comfyui(comfy, fakeapi, tmp_path):
    folder, out = tmp_path / "night", tmp_path / "out"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        px = rng.integers(0, 255, (64, 64, 3), np.uint8)
        px[:, :32] //= 2
        PILImage.fromarray(px).save(folder / f"{i}.png")
    fakeapi.script({"kind": "hold"})  # the judge's answer comes when the test says so

    prompt_id = comfy.queue(busy_graph(fakeapi.url, f"overnight-{time.time_ns()}"))
    deadline = time.monotonic() + 60
    while not fakeapi.requests():  # the judge is waiting on its server: ComfyUI is busy
        assert time.monotonic() < deadline, comfy.log()
        time.sleep(0.2)
    assert comfy.running()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(folder), "--sources", "technical,nudenet",
         "--min-sources", "1", "--comfy", comfy.url, "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    hung = threading.Timer(300, cli.kill)  # a CLI that never ends fails, not hangs
    hung.start()
    said: list[str] = []
    try:
        for line in cli.stderr:  # until the CLI says it waits for the busy ComfyUI
            said.append(line)
            if line.startswith("waiting for ComfyUI"):
                break
        fakeapi.release()  # now the prompt may end
        history = comfy.wait(prompt_id, timeout=120)
        said.extend(cli.stderr)
        cli.wait(300)
    finally:
        hung.cancel()
        fakeapi.release()
        if cli.poll() is None:
            cli.kill()
    stderr = "".join(said)
    assert history.ok, history.status
    assert cli.returncode == 0, stderr
    assert f"waiting for ComfyUI at {comfy.url} (1 running, 0 pending)" in stderr
    assert f"asked ComfyUI at {comfy.url} to free its memory (/free)" in stderr

    ended = history.message("execution_success")["timestamp"] / 1000
    db = sqlite3.connect(out / "scores.sqlite")
    first_scored = db.execute("SELECT MIN(created) FROM cards").fetchone()[0]
    db.close()
    assert first_scored > ended, "the CLI scored while ComfyUI was generating"
    rows = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["score"] is not None for r in rows)

    # on the server: the tagger session the prompt kept loaded was unloaded by /free
    deadline = time.monotonic() + 30
    while loaded_sessions(comfy):
        assert time.monotonic() < deadline, comfy.get("/saiten_test/loaded")
        time.sleep(0.2)
    taggers = [s for s in comfy.get("/saiten_test/loaded")["sources"] if s["name"] == "nudenet"]
    assert taggers and not any(s["loaded"] for s in taggers)  # (model-less checks stay)


def test_the_tagger_stays_loaded_without_the_cli(comfy):
    """The control of the test above: after a prompt nothing but /free unloads the tagger —
    not the prompt's end, not the next prompt (one that loads no model)."""
    tagger = nudenet_tagger(["1", 0])
    tagger["inputs"].update(keep_loaded=True, label=f"control-{time.time_ns()}")
    comfy.run({"1": {"class_type": "SaitenSampleImages", "inputs": {"size": 64}}, "2": tagger,
               "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}})
    assert loaded_sessions(comfy)
    comfy.run({"1": {"class_type": "SaitenSampleImages", "inputs": {"size": 72}},
               "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}})
    assert loaded_sessions(comfy)
    assert comfy.free_until(lambda: not loaded_sessions(comfy), free_memory=True)


def test_verdicts_saved_by_saiten_save_image_are_read_back(comfy, tmp_path):
    """`score` over PNGs a real Saiten Save Image wrote, with the same sources: their
    verdicts are read back, not scored again; with other sources they are scored."""
    prefix = f"overnight_png_{time.time_ns()}/img"
    comfy.run({
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 80}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "SaitenTechnicalCheck",
              "inputs": {"images": ["1", 0], "scores": ["2", 0]}},
        "4": {"class_type": "SaitenEnsembleAggregate", "inputs": {
            "scores.scores0": ["3", 0], "min_sources": 2, "k": 2.5, "weights": ""}},
        "5": {"class_type": "SaitenSaveImage", "inputs": {
            "images": ["1", 0], "verdicts": ["4", 0], "filename_prefix": prefix}},
    })
    folder = comfy.output_dir / prefix.split("/")[0]
    saved = {p.name: PILImage.open(p).text.get("saiten_score") for p in folder.glob("*.png")}
    assert saved
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "scoring", "score", str(folder), "--sources",
                        "nudenet,technical", "--comfy", "off", "--out", str(out)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"0 scored, 0 reused from the cache, {len(saved)} read from Saiten PNG metadata" \
        in r.stdout
    rows = {x["file"]: x for x in map(json.loads, (out / "report.jsonl").read_text()
                                      .splitlines())}
    assert {k: v["reused"] for k, v in rows.items()} == dict.fromkeys(saved, "png")
    for name, score in saved.items():
        got = rows[name]["score"]
        assert (got is None and score is None) or abs(got - float(score)) < 0.06
    other = subprocess.run([sys.executable, "-m", "scoring", "score", str(folder),
                            "--sources", "technical", "--min-sources", "1", "--comfy", "off",
                            "--out", str(tmp_path / "other")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    assert f"{len(saved)} scored, 0 reused" in other.stdout
