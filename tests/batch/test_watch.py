"""The folder watcher on a real folder, on a clock the test drives: only complete files, each
change once, the idle exit after exactly its seconds — nothing sleeps, nothing races."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from helpers.clock import FakeClock
from helpers.overnight import SOURCES, comfy_png, images, report
from helpers.run_cli import REPO

from scoring.batch.watch import FolderWatch


def test_a_file_being_written_waits_until_it_is_stable(tmp_path):
    clock = FakeClock()
    w = FolderWatch(tmp_path, settle=0.5, clock=clock, sleep=clock.sleep)
    f = (tmp_path / "a.png").open("wb")
    f.write(b"x" * 100)
    f.flush()
    assert w.ready() == []
    clock.advance(0.25)
    f.write(b"y" * 100)  # still growing
    f.flush()
    assert w.ready() == []
    clock.advance(0.25)
    assert w.ready() == []  # changed 0.25 s ago
    f.close()
    clock.advance(0.125)
    assert w.ready() == []  # unchanged for 0.375 s: not yet
    clock.advance(0.125)
    assert w.ready() == [tmp_path / "a.png"]  # unchanged for the whole 0.5 s
    assert w.ready() == []  # once
    clock.advance(60)
    assert w.ready() == []  # and never again while it stays as it is


def test_renamed_into_place_ignored_while_temporary_and_changed_again(tmp_path):
    clock = FakeClock()
    w = FolderWatch(tmp_path, settle=0.25, clock=clock, sleep=clock.sleep)
    (tmp_path / "b.png.tmp").write_bytes(b"z" * 50)
    (tmp_path / ".c.png").write_bytes(b"z" * 50)
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "empty.png").write_bytes(b"")
    assert w.ready() == []
    clock.advance(0.5)
    assert w.ready() == []  # temporary, hidden, not an image, empty: never, however long
    os.replace(tmp_path / "b.png.tmp", tmp_path / "b.png")
    assert w.ready() == []
    clock.advance(0.25)
    assert w.ready() == [tmp_path / "b.png"]
    (tmp_path / "b.png").write_bytes(b"w" * 60)  # overwritten: scored again
    assert w.ready() == []
    clock.advance(0.25)
    assert w.ready() == [tmp_path / "b.png"]


def test_mark_done_and_batches_with_idle_exit(tmp_path):
    for i in range(3):
        (tmp_path / f"old{i}.png").write_bytes(b"o" * (10 + i))

    def writer(now: float) -> None:  # a file lands 0.5 s in, while the watcher sleeps
        if now >= start + 0.5 and not (tmp_path / "new.png").exists():
            (tmp_path / "new.png").write_bytes(b"n" * 10)

    clock = FakeClock(on_sleep=writer)
    start = clock()
    w = FolderWatch(tmp_path, settle=0.25, poll=0.25, clock=clock, sleep=clock.sleep)
    w.mark_done([tmp_path / "old0.png"])
    got, at = [], []
    for batch in w.batches(2, idle_exit=0.75):
        got.append(batch)
        at.append(clock() - start)
    assert got == [[tmp_path / "old1.png", tmp_path / "old2.png"], [tmp_path / "new.png"]]
    assert at == [0.25, 0.75]  # each file once it held still for `settle`
    assert clock() - start - at[-1] == 0.75  # ended after idle_exit s with no new file
    assert set(clock.slept) == {0.25}  # it only ever slept its poll interval


def test_batches_stop_when_asked(tmp_path):
    (tmp_path / "a.png").write_bytes(b"a")
    clock = FakeClock()
    w = FolderWatch(tmp_path, settle=0, poll=0.01, clock=clock, sleep=clock.sleep)
    stop = []
    out = []
    for b in w.batches(8, stop=lambda: bool(stop)):
        out.append(b)
        stop.append(1)
    assert out == [[tmp_path / "a.png"]] and clock.slept == []


# -- `python -m scoring watch` as a real subprocess --------------------------------------
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
