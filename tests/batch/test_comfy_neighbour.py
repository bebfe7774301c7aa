"""The ComfyUI neighbour client against a real HTTP server on 127.0.0.1 that answers
`/queue` as scripted (tests/helpers/fakecomfy.py): busy, idle, odd, broken or silent."""

from __future__ import annotations

import socket

import pytest
from helpers.clock import FakeClock
from helpers.fakecomfy import FakeComfy

from scoring.batch.comfy_neighbour import ComfyNeighbour, QueueState, neighbour


@pytest.fixture(scope="module")
def server():
    s = FakeComfy()
    yield s
    s.stop()


@pytest.fixture
def fake(server):
    server.answer()
    return server


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


def test_the_cli_memory_policy_makes_room_beside_comfyui_before_a_gpu_load(fake):
    """What a source's `memory.reserve(nbytes, "cuda")` does from the CLI: wait for the
    ComfyUI beside it, ask it to free (once), then report the free VRAM (unknown here)."""
    from scoring.batch.memory import CliMemory, cuda_device, nvidia_driver
    from scoring.batch.runner import Runner
    from scoring.ensemble.aggregate import AggregateSettings

    fake.answer("busy")
    runner = Runner([], AggregateSettings(), neighbour=ComfyNeighbour(fake.url, poll=0.05))
    memory = CliMemory(runner.make_room, runner.free_again, device="cuda:0")
    assert memory.device() == "cuda:0"
    assert memory.reserve(1 << 30, "cpu") is None and fake.frees == []  # RAM: no fuss
    free = memory.reserve(1 << 30, "cuda:0")
    assert len(fake.frees) == 1 and len(fake.polls) == 2  # waited out "busy", then freed
    assert free is None or free > 0
    memory.reserve(1 << 30, "cuda:0")
    assert len(fake.frees) == 1  # once until ComfyUI is busy again
    assert memory.recover(None, "cuda:0") and len(fake.frees) == 2  # after an OOM
    assert not memory.recover(None, "cpu")
    if not nvidia_driver():
        assert cuda_device() == "cpu" and CliMemory().device() == "cpu"
