"""Writing files whole or not at all, on real file systems: a 200 KiB tmpfs that fills, the
same tmpfs remounted read-only, writers racing in threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.disk import fill, remount, tmpfs

from scoring.core.atomic import (
    Staged,
    WriteError,
    folder_lock,
    free_space,
    replacing,
    write_bytes,
    write_text,
)

REPO = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "report.html"
    write_text(p, "old")
    write_text(p, "new " * 1000)
    assert p.read_text() == "new " * 1000
    assert leftovers(tmp_path) == []


def test_error_inside_the_block_keeps_the_old_file(tmp_path):
    p = tmp_path / "a.json"
    write_bytes(p, b"old")
    for exc in (ValueError("bug"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), replacing(p) as f:
            f.write(b"half")
            raise exc
        assert p.read_bytes() == b"old"
        assert leftovers(tmp_path) == []


def test_racing_writers_never_cross(tmp_path):
    """Eight threads rewriting one file: every write succeeds (unique temp names; a fixed
    name made one of two runs crash) and the file is always one writer's whole text."""
    p = tmp_path / "report.jsonl"
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for _ in range(30):
                write_text(p, f"{k}\n" * 2000)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        text = p.read_text() if p.exists() else ""
        if text:
            assert len(set(text.splitlines())) == 1 and len(text.splitlines()) == 2000
            seen.add(text[0])
    for t in threads:
        t.join()
    assert errors == []
    assert leftovers(tmp_path) == []


def test_full_disk_is_one_line_naming_the_folder_and_free_space(tmp_path):
    with tmpfs(tmp_path / "disk", "200k") as disk:
        p = write_text(disk / "report.html", "previous report")
        with pytest.raises(WriteError) as got:
            write_bytes(disk / "report.html", b"x" * 400_000)
        msg = str(got.value)
        assert "\n" not in msg
        assert msg.startswith(f"cannot write report.html in {disk}: no space left on device")
        assert "free of 200.0 KB" in msg
        assert p.read_text() == "previous report"
        assert leftovers(disk) == []
        assert isinstance(got.value, OSError) and got.value.errno == 28


def test_read_only_folder_is_one_line_too(tmp_path):
    with tmpfs(tmp_path / "disk", "200k") as disk:
        write_text(disk / "report.csv", "old")
        remount(disk, ro=True)
        try:
            with pytest.raises(WriteError) as got:
                write_text(disk / "report.csv", "new")
            assert str(got.value).startswith(
                f"cannot write report.csv in {disk}: read-only file system (")
            assert (disk / "report.csv").read_text() == "old"
        finally:
            remount(disk, ro=False)
        assert leftovers(disk) == []


def test_staged_files_move_together_or_not_at_all(tmp_path):
    with tmpfs(tmp_path / "disk", "200k") as disk:
        for name in ("report.jsonl", "report.csv", "report.html"):
            write_text(disk / name, f"old {name}")
        filler = fill(disk, leave=60_000)
        with pytest.raises(WriteError), Staged() as s:
            s.write(disk / "report.jsonl", lambda f: f.write("j" * 20_000))
            s.write(disk / "report.csv", lambda f: f.write("c" * 20_000))
            s.write(disk / "report.html", lambda f: f.write("h" * 90_000))  # does not fit
            s.commit()
        assert [(disk / n).read_text() for n in ("report.jsonl", "report.csv",
                                                  "report.html")] == \
            ["old report.jsonl", "old report.csv", "old report.html"]
        assert leftovers(disk) == []
        filler.unlink()
        with Staged() as s:
            s.write(disk / "report.jsonl", lambda f: f.write("new"))
            s.write(disk / "report.csv", lambda f: f.write("new"))
            assert (disk / "report.jsonl").read_text() == "old report.jsonl"
            s.commit()
        assert (disk / "report.csv").read_text() == "new" and leftovers(disk) == []


def test_free_space_of_a_folder_not_yet_made(tmp_path):
    assert "free of" in free_space(tmp_path / "not" / "yet")


HOLD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from scoring.core.atomic import folder_lock
with folder_lock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_folder_lock_makes_processes_take_turns(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(REPO), str(tmp_path), "1.0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with folder_lock(tmp_path):
            waited = time.monotonic() - t0
        assert p.wait(10) == 0
        assert waited > 0.3  # it waited for the other process to let go
        with pytest.raises(TimeoutError, match=str(tmp_path)):
            q = subprocess.Popen([sys.executable, "-c", HOLD, str(REPO), str(tmp_path), "3"],
                                 stdout=subprocess.PIPE, text=True)
            assert q.stdout is not None and q.stdout.readline().strip() == "held"
            try:
                with folder_lock(tmp_path, timeout=0.3):
                    pass
            finally:
                q.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    assert os.path.exists(tmp_path / ".saiten.lock")
