"""`python -m scoring score|watch` overnight, as real subprocesses on real files with real
sources: resume from the cache, an interrupted run resumed, a watched folder that ComfyUI-
style PNGs land in, the ComfyUI beside it (a scripted /queue server), the progress bar."""

from __future__ import annotations

import csv
import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.fakecomfy import FakeComfy
from helpers.run_cli import REPO, run
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

SOURCES = ("--sources", "technical,nudenet", "--min-sources", "1")


def comfy_png(path: Path, seed: int, prompt: str, rng: np.random.Generator) -> Path:
    """A PNG like ComfyUI's SaveImage writes: pixels plus the API graph as `prompt`."""
    graph = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.ckpt"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad", "clip": ["4", 1]}},
    }
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    pixels = rng.integers(0, 255, (64, 64, 3), np.uint8)
    pixels[:, :32] //= 2  # some structure, so the technical check has an opinion
    PILImage.fromarray(pixels).save(path, "PNG", pnginfo=info)
    return path


def images(folder: Path, n: int, seed0: int = 1000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed0)
    return [comfy_png(folder / f"ComfyUI_{i:05}_.png", seed0 + i, f"prompt {i % 3}", rng)
            for i in range(n)]


def report(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]


def cached(out: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(out / "scores.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_resume_reuses_every_score(tmp_path):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 120)
    t0 = time.perf_counter()
    first = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                cwd=tmp_path)
    t1 = time.perf_counter()
    assert first.returncode == 0, first.stderr
    assert "120 images: 120 scored, 0 reused from the cache" in first.stdout
    stored = cached(out, "SELECT image, source, created FROM cards ORDER BY 1, 2")
    assert len(stored) == 240  # 120 images × 2 sources

    second = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                 cwd=tmp_path)
    t2 = time.perf_counter()
    assert second.returncode == 0, second.stderr
    assert "120 images: 0 scored, 120 reused from the cache" in second.stdout
    rows = report(out)
    assert len(rows) == 120 and len({r["file"] for r in rows}) == 120
    assert {r["reused"] for r in rows} == {"cache"}
    assert rows[0]["comfy"]["seed"] == 1000 and rows[0]["comfy"]["checkpoint"] == "tiny.ckpt"
    # the sources did not run again: not one card was written by the second run
    assert cached(out, "SELECT image, source, created FROM cards ORDER BY 1, 2") == stored
    first_rows = {r["file"]: r["score"] for r in report(out)}
    print(f"\nresume over 120 images: second run {t2 - t1:.2f}s / first {t1 - t0:.2f}s "
          f"= {(t2 - t1) / (t1 - t0):.2f}")

    third = run("score", str(folder), *SOURCES, "--comfy", "off", "--rescore", "--out",
                str(out), cwd=tmp_path)
    assert "120 images: 120 scored, 0 reused" in third.stdout
    assert {r["file"]: r["score"] for r in report(out)} == first_rows


def test_an_interrupted_run_resumes_without_duplicates(tmp_path):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 40)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(folder), *SOURCES, "--batch", "1",
         "--comfy", "off", "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not proc.stderr.readline().startswith("scored 3/40"):
            pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: reporting the" in err
    done = len(report(out))
    assert 3 <= done < 40
    assert cached(out, "SELECT COUNT(DISTINCT image) FROM cards")[0][0] == done

    again = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"40 images: {40 - done} scored, {done} reused from the cache" in again.stdout
    rows = report(out)
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in folder.iterdir())
    assert cached(out, "SELECT COUNT(*) FROM cards")[0][0] == 80


def test_watch_scores_what_lands_in_the_folder(tmp_path):
    """Each file lands after the watcher said it scored the ones before (its "scored N"
    line), never after a guessed pause. The only times are the watcher's own: --settle 1 s
    (far longer than the slow writer's pauses) and --idle-exit 8 s (far longer than a new
    file's settle), so a loaded machine changes how long this takes, not what it finds.
    Every rule of the watcher on a driven clock: tests/batch/test_watch.py."""
    folder, out = tmp_path / "output", tmp_path / "out"
    images(folder, 2, seed0=1)  # already there when the watch starts
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "watch", str(folder), *SOURCES, "--settle", "1",
         "--idle-exit", "8", "--comfy", "off", "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    hung = threading.Timer(300, proc.kill)  # a watch that never ends fails, not hangs
    hung.start()
    said: list[str] = []

    def scored(n: int) -> None:
        """Read the watcher's lines until it has scored `n` files in all."""
        for line in proc.stderr:
            said.append(line)
            if line.startswith("scored ") and int(line.split()[1]) >= n:
                return
        raise AssertionError(f"the watch ended before scoring {n} files:\n{''.join(said)}")

    try:
        scored(2)
        rng = np.random.default_rng(7)
        for i in range(3):  # written straight into place
            comfy_png(folder / f"ComfyUI_{10 + i:05}_.png", 500 + i, "桜の下で", rng)
        tmp = comfy_png(folder / "upscaled.png.tmp", 777, "renamed", rng)
        os.replace(tmp, folder / "upscaled.png")  # renamed into place
        data = comfy_png(tmp_path / "slow.png", 888, "slow", rng).read_bytes()
        with (folder / "slow.png").open("wb") as f:  # a writer still appending
            for k in range(0, len(data), len(data) // 4 + 1):
                f.write(data[k:k + len(data) // 4 + 1])
                f.flush()
                time.sleep(0.05)  # (were a part picked up, it would be scored again whole)
        scored(7)
        comfy_png(folder / "ComfyUI_00010_.png", 501, "overwritten", rng)  # changed
        scored(8)
        said.extend(proc.stderr)  # to the end of the watch
        proc.wait()
    finally:
        hung.cancel()
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(said)
    assert proc.returncode == 0, stderr
    assert "no new file for 8s: reporting 7 images" in stderr
    rows = report(out)
    by_name = {r["file"]: r for r in rows}
    assert len(rows) == len(by_name) == 7  # one row per file, the overwritten one once
    assert by_name["ComfyUI_00010_.png"]["comfy"]["seed"] == 501
    assert by_name["ComfyUI_00010_.png"]["comfy"]["prompt"] == "overwritten"
    assert by_name["upscaled.png"]["comfy"]["seed"] == 777
    assert by_name["slow.png"]["comfy"]["seed"] == 888 and by_name["slow.png"]["score"] is not None
    assert all(r["score"] is not None for r in rows)
    with (out / "report.csv").open(newline="", encoding="utf-8") as f:
        table = {r["name"]: r for r in csv.DictReader(f)}
    assert table["ComfyUI_00011_.png"]["seed"] == "501"
    assert table["ComfyUI_00011_.png"]["prompt"] == "桜の下で"
    assert "桜の下で" in (out / "report.html").read_text(encoding="utf-8")


def test_ctrl_c_ends_a_watch_with_the_report(tmp_path):
    folder, out = tmp_path / "output", tmp_path / "out"
    images(folder, 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "watch", str(folder), *SOURCES, "--settle", "0.2",
         "--comfy", "off", "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not proc.stderr.readline().startswith("scored 2"):
            pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: reporting 2 images" in err and len(report(out)) == 2


@pytest.fixture
def fake_comfy():
    server = FakeComfy()
    yield server
    server.stop()


def test_waits_for_a_busy_comfyui_and_makes_it_free_memory(tmp_path, fake_comfy):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 4)
    fake_comfy.answer("busy", "pending:4", "junk")  # then idle
    r = run("score", str(folder), *SOURCES, "--comfy", fake_comfy.url, "--out", str(out),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"waiting for ComfyUI at {fake_comfy.url} (1 running, 0 pending)" in r.stderr
    assert "(0 running, 4 pending)" not in r.stderr  # one progress line per 30 s in a log
    assert len(fake_comfy.frees) == 1  # once before loading, not per batch
    assert fake_comfy.frees[0][1] == {"unload_models": True, "free_memory": True}
    first_card = cached(out, "SELECT MIN(created) FROM cards")[0][0]
    last_busy = max(t for t, a in fake_comfy.polls if a in ("busy", "pending:4"))
    assert last_busy < fake_comfy.frees[0][0] < first_card  # waited, freed, then scored
    assert "ComfyUI freed its memory 1×" in r.stdout


def test_a_comfyui_that_stays_busy_or_answers_nonsense_never_stops_the_run(tmp_path,
                                                                           fake_comfy):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 2)
    fake_comfy.answer(default="busy")
    r = run("score", str(folder), *SOURCES, "--comfy", fake_comfy.url, "--comfy-wait", "1",
            "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "still busy after" in r.stderr and "scoring anyway" in r.stderr
    assert len(report(out)) == 2
    fake_comfy.answer(default="odd")
    r = run("score", str(folder), *SOURCES, "--comfy", fake_comfy.url, "--rescore",
            "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr and "waiting" not in r.stderr


def test_progress_bar_at_a_terminal(tmp_path):
    folder = tmp_path / "night"
    images(folder, 6)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with a terminal as stdout/stderr
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "scoring", "score", str(folder),
                                   *SOURCES, "--batch", "2", "--comfy", "off", "--out",
                                   str(tmp_path / "out")], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "6/6" in text and "img/s" in text and "100%" in text
    assert "scored 2/6" not in text  # the bar replaces the plain lines


def test_watch_refuses_bad_arguments(tmp_path):
    r = run("watch", str(tmp_path / "nowhere"), "--comfy", "off", cwd=tmp_path)
    assert r.returncode == 2 and "is not a folder" in r.stderr
    r = run("watch", str(tmp_path), "--idle-exit", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "--idle-exit must not be negative" in r.stderr
