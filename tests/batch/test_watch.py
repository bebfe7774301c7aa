"""The folder watcher on a real folder, on a clock the test drives: only complete files, each
change once, the idle exit after exactly its seconds — nothing sleeps, nothing races."""

from __future__ import annotations

import os

from helpers.clock import FakeClock

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
