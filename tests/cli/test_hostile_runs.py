"""The CLI (`python -m scoring`, a real subprocess) against hostile disks and files (issue
N.5, N.6): a report folder on a real 200 KiB tmpfs that fills, or remounted read-only, ends
the run with one line naming the folder and its free space (exit 74), no temporary file
left and the previous report intact — or, where a report was written while the run went on,
saying on its page that it is partial; three runs on one folder all finish with one
consistent report; a `watch` killed (SIGKILL, as the out-of-memory killer) while a file is
in hand skips that file when it starts again; a 300-frame GIF and a 13000² PNG cost memory
by what Saiten decodes, not by what they claim."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.disk import remount, tmpfs
from helpers.hostile_files import big_png, many_frames_gif
from helpers.reports import page_data
from helpers.run_cli import REPO, run
from PIL import Image

from scoring.core.images import MAX_FRAMES

TECH = ["--sources", "technical", "--min-sources", "1", "--comfy", "off"]
MB = 1 << 20


def photos(folder: Path, n: int, side: int = 160) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side] / side
    for i in range(n):
        img = np.stack([x, y, (x + y) / 2], -1) * rng.uniform(0.4, 1.0, 3)
        img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"img{i:03}.png")
    return folder


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


ONE_LINE = r"error: cannot write \S+ in {out}\S*: {why} \(.+ free of {size}\)"


def test_a_full_disk_is_one_line_and_the_previous_report_stays(tmp_path):
    images = photos(tmp_path / "in", 60)
    with tmpfs(tmp_path / "out", "200k") as out:
        first = run("score", str(images / "img000.png"), *TECH, "--out", str(out),
                    cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        before = (out / "report.html").read_bytes()
        r = run("score", str(images), *TECH, "--batch", "4", "--out", str(out), cwd=tmp_path)
        assert r.returncode == 74, r.stdout + r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
        assert len(lines) == 1 and "Traceback" not in r.stderr
        assert re.fullmatch(ONE_LINE.format(out=re.escape(str(out)), size=r"200\.0 KB",
                                            why="no space left on device"), lines[0]), lines
        assert temps(out) == []
        page = (out / "report.html").read_bytes()
        data = page_data(page.decode())
        assert page == before or data["note"].startswith(
            "Partial report, written while the run was in progress")  # never a stale "whole"
        rows = (out / "report.jsonl").read_text().splitlines()
        assert len(rows) == len(data["entries"])  # the three files agree


def test_a_read_only_folder_is_one_line_too(tmp_path):
    images = photos(tmp_path / "in", 3)
    with tmpfs(tmp_path / "out", "2m") as out:
        assert run("score", str(images), *TECH, "--out", str(out), cwd=tmp_path
                   ).returncode == 0
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        remount(out, ro=True)
        try:
            r = run("score", str(images), *TECH, "--rescore", "--out", str(out), cwd=tmp_path)
        finally:
            remount(out, ro=False)
        assert r.returncode == 74 and "Traceback" not in r.stderr
        assert re.fullmatch(ONE_LINE.format(out=re.escape(str(out)), size=r"2\.0 MB",
                                            why="(read-only file system|attempt to write a "
                                                "readonly database)"),
                            r.stderr.strip().splitlines()[-1]), r.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_three_runs_on_one_folder_all_finish_with_one_consistent_report(tmp_path):
    images = photos(tmp_path / "in", 40, side=96)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(3):
        out = tmp_path / f"out{round_}"
        procs = [subprocess.Popen([sys.executable, "-m", "scoring", "score", str(images),
                                   *TECH, "--batch", "5", "--out", str(out)], cwd=tmp_path,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errs
        rows = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
        with (out / "report.csv").open(newline="") as f:
            table = list(csv.DictReader(f))
        assert sorted(r["file"] for r in rows) == sorted(p.name for p in images.iterdir())
        assert [r["name"] for r in table] == [r["file"] for r in rows]
        assert len(page_data(out / "report.html")["entries"]) == 40
        assert temps(out) == []


def test_a_watch_killed_on_a_file_skips_it_when_it_starts_again(tmp_path):
    images = photos(tmp_path / "in", 2, side=96)
    big_png(images / "img001b.png", 7000, 7000)  # decoded at full size, then reduced: slow
    out = tmp_path / "out"
    args = [sys.executable, "-m", "scoring", "watch", str(images), *TECH, "--batch", "1",
            "--settle", "0", "--idle-exit", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    record = out / ".saiten-inflight.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill it the moment the big file is in hand
            try:
                runs = json.loads(record.read_text())["runs"]
            except (OSError, ValueError, KeyError):
                runs = {}
            if any("img001b.png" in r["files"] for r in runs.values()):
                os.kill(p.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        else:
            pytest.fail("the watch never took the big file in hand")
    finally:
        p.wait(30)
    assert p.returncode == -signal.SIGKILL
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    rows = {r["file"]: r for r in map(json.loads,
                                      (out / "report.jsonl").read_text().splitlines())}
    assert rows["img001b.png"]["unscored"] == (
        "img001b.png: skipped: a run died while scoring this file (out of memory?); it is "
        "skipped until the file changes")
    assert rows["img000.png"]["score"] is not None and rows["img001.png"]["score"] is not None


_PEAK = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
         "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); _, s, u = os.wait4(p.pid, 0); "
         "print(os.waitstatus_to_exitcode(s), u.ru_maxrss)")


def peak_mb(args: list[str], cwd: Path) -> tuple[int, float]:
    """(exit status, peak RSS in MB) of one CLI run, that process alone. Linux keeps a
    process's peak across exec, and a child forked from this (large) test process starts at
    its size: a small launcher forks the CLI and reads its peak (os.wait4)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "scoring", *args],
                         cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    code, kb = out.split()
    return int(code), int(kb) / 1024


@pytest.mark.slow
def test_files_that_claim_a_lot_cost_what_saiten_decodes(tmp_path):
    """The issue's files: a 300-frame 1024² GIF (3.7 GB before) and a 13000² PNG (7.8 GB
    before). Their rows say what was scored and what was not."""
    d = tmp_path / "in"
    d.mkdir()
    many_frames_gif(d / "anim.gif", frames=300, side=1024)
    big_png(d / "big.png", 13000, 13000)
    out = tmp_path / "out"
    code, mb = peak_mb(["score", str(d), *TECH, "--out", str(out)], tmp_path)
    assert code == 0
    assert mb < 1000, f"peak {mb:.0f} MB"
    rows = {r["file"]: r for r in map(json.loads, (out / "report.jsonl").read_text()
                                      .splitlines())}
    assert set(rows) == {*(f"anim.gif#{k}" for k in range(MAX_FRAMES)),
                         f"anim.gif#{MAX_FRAMES}-299", "big.png"}
    assert rows[f"anim.gif#{MAX_FRAMES}-299"]["unscored"].startswith(
        f"anim.gif: 300 frames; the first {MAX_FRAMES} are scored")
    assert "13000×13000 px (169 MP) is more than the 64 MP" in rows["big.png"]["unscored"]
    assert all(rows[f"anim.gif#{k}"]["score"] is not None for k in range(MAX_FRAMES))
