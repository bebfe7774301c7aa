"""`python -m scoring score|watch` overnight, as real subprocesses on real files with real
sources: resume from the cache, an interrupted run resumed, a watched folder that ComfyUI-
style PNGs land in, the ComfyUI beside it (a scripted /queue server), the progress bar."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from helpers.overnight import SOURCES, cached, comfy_png, images, report
from helpers.run_cli import REPO, run


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
