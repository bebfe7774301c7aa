"""The ComfyUI neighbour client against a real HTTP server on 127.0.0.1 that answers
`/queue` as scripted (tests/helpers/fakecomfy.py): busy, idle, odd, broken or silent — and
the CLI beside it, as a real subprocess: it waits while ComfyUI generates and makes it free
memory first, and a ComfyUI that stays busy or answers nonsense never stops a run."""

from __future__ import annotations

import socket

import pytest
from helpers.clock import FakeClock
from helpers.fakecomfy import FakeComfy
from helpers.overnight import SOURCES, cached, images, report
from helpers.run_cli import run

from scoring.batch.comfy_neighbour import ComfyNeighbour, QueueState, neighbour


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_queue_states(fake):
    fake.answer("idle", "busy", "pending:2", "pending:3")
    c = ComfyNeighbour(fake.url)
    states = [c.queue() for _ in range(4)]
    assert [s.busy for s in states] == [False, True, False, True]
    assert states[1] == QueueState(1, 0) and states[3].describe() == "0 running, 3 pending"


@pytest.mark.parametrize("answer", ["junk", "odd", "error", "hang:10"])  # 10 s ≫ 0.5 s
def test_odd_answers_count_as_idle_and_never_raise(fake, answer):
    fake.answer(answer)
    c = ComfyNeighbour(fake.url, timeout=0.5)
    state = c.queue()
    assert state.answered is False and not state.busy
    assert state.describe() == "not answering"


def test_nobody_listening_counts_as_idle():
    clock = FakeClock()
    c = ComfyNeighbour(f"http://127.0.0.1:{closed_port()}", timeout=0.5, clock=clock,
                       sleep=clock.sleep)
    assert c.queue() == QueueState(answered=False)
    assert c.wait_idle(5) == (True, 0) and clock.slept == []  # at once, no wait
    assert c.free() is False and c.frees == 0


def test_wait_until_idle_with_a_progress_line(fake):
    fake.answer("busy", "busy", "pending:5", "idle")
    lines: list[str] = []
    c = ComfyNeighbour(fake.url, poll=0.05)
    idle, _ = c.wait_idle(30, lines.append)
    assert idle and len(lines) == 3 and len(fake.polls) == 4
    assert lines[0].startswith(f"waiting for ComfyUI at {fake.url} (1 running, 0 pending)")
    assert "of at most 30s" in lines[0] and "0 running, 5 pending" in lines[2]


def test_wait_is_bounded(fake):
    fake.answer(default="busy")
    clock = FakeClock()
    c = ComfyNeighbour(fake.url, poll=0.5, clock=clock, sleep=clock.sleep)
    idle, waited = c.wait_idle(2.25)
    assert not idle and waited == 2.25  # gave up at its bound, not a poll later
    assert clock.slept == [0.5, 0.5, 0.5, 0.5, 0.25] and len(fake.polls) == 6


def test_free_asks_to_unload_and_free(fake):
    c = ComfyNeighbour(fake.url)
    assert c.free() and c.frees == 1
    assert [body for _, body in fake.frees] == [{"unload_models": True, "free_memory": True}]


def test_the_comfy_option(fake):
    assert neighbour("off") is None and neighbour("OFF") is None
    n = neighbour(fake.url.removeprefix("http://"))
    assert n is not None and n.url == fake.url
    silent = neighbour(f"http://127.0.0.1:{closed_port()}")  # named: kept, and counts as idle
    assert silent is not None and not silent.queue().busy


# -- the CLI beside a ComfyUI ----------------------------------------------------------
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
