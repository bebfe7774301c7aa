"""The folder watcher on a real folder: only complete files, each change once."""

from __future__ import annotations

import os
import threading
import time

from scoring.batch.watch import FolderWatch


def test_a_file_being_written_waits_until_it_is_stable(tmp_path):
    w = FolderWatch(tmp_path, settle=0.3)
    f = (tmp_path / "a.png").open("wb")
    f.write(b"x" * 100)
    f.flush()
    assert w.ready() == []
    time.sleep(0.2)
    f.write(b"y" * 100)  # still growing
    f.flush()
    assert w.ready() == []
    time.sleep(0.2)
    assert w.ready() == []  # changed 0.2 s ago
    f.close()
    time.sleep(0.35)
    assert w.ready() == [tmp_path / "a.png"]
    assert w.ready() == []  # once


def test_renamed_into_place_ignored_while_temporary_and_changed_again(tmp_path):
    w = FolderWatch(tmp_path, settle=0.2)
    (tmp_path / "b.png.tmp").write_bytes(b"z" * 50)
    (tmp_path / ".c.png").write_bytes(b"z" * 50)
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "empty.png").write_bytes(b"")
    assert w.ready() == []
    time.sleep(0.25)
    assert w.ready() == []
    os.replace(tmp_path / "b.png.tmp", tmp_path / "b.png")
    w.ready()
    time.sleep(0.25)
    assert w.ready() == [tmp_path / "b.png"]
    (tmp_path / "b.png").write_bytes(b"w" * 60)  # overwritten: scored again
    w.ready()
    time.sleep(0.25)
    assert w.ready() == [tmp_path / "b.png"]


def test_mark_done_and_batches_with_idle_exit(tmp_path):
    for i in range(3):
        (tmp_path / f"old{i}.png").write_bytes(b"o" * (10 + i))
    w = FolderWatch(tmp_path, settle=0.1, poll=0.05)
    w.mark_done([tmp_path / "old0.png"])

    def writer():
        time.sleep(0.3)
        (tmp_path / "new.png").write_bytes(b"n" * 10)

    t = threading.Thread(target=writer)
    t.start()
    t0 = time.monotonic()
    got = list(w.batches(2, idle_exit=0.8))
    t.join()
    assert got == [[tmp_path / "old1.png", tmp_path / "old2.png"], [tmp_path / "new.png"]]
    assert 0.8 <= time.monotonic() - t0 < 5


def test_batches_stop_when_asked(tmp_path):
    (tmp_path / "a.png").write_bytes(b"a")
    w = FolderWatch(tmp_path, settle=0, poll=0.01)
    stop = []
    out = []
    for b in w.batches(8, stop=lambda: bool(stop)):
        out.append(b)
        stop.append(1)
    assert out == [[tmp_path / "a.png"]]
