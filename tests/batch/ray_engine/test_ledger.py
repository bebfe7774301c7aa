"""The run's shared remote state (`ray_ledger`) in one process: what the Ray actor holds and
what a worker's stand-ins ask it. The same ledger across a real cluster: test_ray_engine.py."""

from __future__ import annotations

import threading

import pytest

from scoring.batch.ray_engine.ledger import Ledger, SharedBreaker, SharedBudget, SharedCache
from scoring.core.errors import BudgetExhausted
from scoring.remote import CircuitOpen
from scoring.remote.breaker import THRESHOLD


def test_parallel_callers_never_overshoot_the_runs_budget():
    ledger = Ledger({"grok": (7, None)})
    budgets = [SharedBudget(ledger=ledger, name="grok") for _ in range(4)]
    sent, refused = [], []

    def worker(b: SharedBudget) -> None:
        for _ in range(5):
            try:
                b.take_call(0.0)
                sent.append(1)
            except BudgetExhausted as e:
                refused.append(str(e))

    threads = [threading.Thread(target=worker, args=(b,)) for b in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == 7 and len(refused) == 13
    assert ledger.spent("grok") == (7, 0.0)
    assert "7 of max 7 calls" in refused[-1]


def test_usd_is_reserved_before_sending_and_settled_after():
    ledger = Ledger({"grok": (None, 0.01)})
    a, b = SharedBudget(ledger=ledger, name="grok"), SharedBudget(ledger=ledger, name="grok")
    a.take_call(0.006)  # in flight: its worst case is reserved
    with pytest.raises(BudgetExhausted, match="could cost up to"):
        b.take_call(0.006)
    a.settle(0.006, 0.001)  # it cost less: room again
    b.take_call(0.006)
    b.settle(0.006, 0.002)
    assert ledger.spent("grok") == (2, pytest.approx(0.003))


def test_a_budget_without_limits_counts_but_never_refuses():
    ledger = Ledger()
    b = SharedBudget(ledger=ledger, name="vlm")
    for _ in range(50):
        b.take_call(1.0)
        b.settle(1.0, 1.0)
    assert ledger.spent("vlm") == (50, 50.0)


def test_the_breaker_opens_for_every_worker_of_the_run_and_per_server():
    ledger = Ledger()
    one, two = (SharedBreaker(ledger, "http://judge:80") for _ in range(2))
    other = SharedBreaker(ledger, "http://vlm:80")
    for i in range(THRESHOLD):
        (one if i % 2 else two).before("judge")
        (one if i % 2 else two).failure("HTTP 500")
    for b in (one, two):
        with pytest.raises(CircuitOpen, match=f"{THRESHOLD} failed attempts in a row"):
            b.before("judge")
    other.before("VLM server")  # another server: its own state
    ledger.breakers["http://judge:80"].retry_at = 0.0  # the cool-down is over: one probe
    one.before("judge")
    with pytest.raises(CircuitOpen):
        two.before("judge")
    one.success()
    two.before("judge")


def test_the_answer_cache_is_one_file_beside_the_ledger(tmp_path):
    ledger = Ledger()
    path = tmp_path / "judge_cache.sqlite"
    a, b = SharedCache(ledger, str(path)), SharedCache(ledger, str(path))
    assert a.path is None and b.get("k") is None  # no file on the worker's side
    a.put("k", "grok", '{"overall": 70}', {"prompt_tokens": 3})
    assert b.get("k") == '{"overall": 70}'
    assert path.is_file()
