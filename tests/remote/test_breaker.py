"""The circuit breaker on a clock the test drives: it opens after 3 failures in a row, lets
exactly one probe through when the cool-down ($SAITEN_HTTP_COOLDOWN, default 5 min) is over,
doubles the cool-down after each failed probe up to 30 min, and closes on an answer — all
to the second, without waiting. (With a real server: tests/remote/test_transport.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from helpers.clock import FakeClock

from scoring.remote import breaker as B
from scoring.remote.breaker import THRESHOLD, Breaker, CircuitOpen


def opened(clock: FakeClock) -> Breaker:
    b = Breaker("http://judge.test:80", clock=clock)
    for i in range(THRESHOLD):
        b.before("judge")  # closed: every attempt goes
        b.failure(f"no answer {i}")
    return b


def may_go(b: Breaker) -> bool:
    try:
        b.before("judge")
    except CircuitOpen:
        return False
    return True


def test_three_failures_open_it_and_one_probe_goes_after_exactly_the_cool_down(monkeypatch):
    monkeypatch.delenv("SAITEN_HTTP_COOLDOWN", raising=False)
    clock = FakeClock()
    b = Breaker("http://judge.test:80", clock=clock)
    b.failure("a")
    b.failure("b")
    assert b.retry_at is None and may_go(b)  # two in a row: still closed
    b.failure("c")
    assert b.cooldown == 300 and b.retry_at == clock() + 300
    clock.advance(299.5)
    assert not may_go(b)
    clock.advance(0.5)
    assert may_go(b)  # the probe
    assert not may_go(b) and not may_go(b)  # only one while it is out
    b.success()
    assert b.failures == 0 and b.retry_at is None and b.cooldown == 0
    assert may_go(b) and may_go(b)


def test_each_failed_probe_doubles_the_cool_down_up_to_thirty_minutes(monkeypatch):
    monkeypatch.delenv("SAITEN_HTTP_COOLDOWN", raising=False)
    clock = FakeClock()
    b = opened(clock)
    seen = [b.cooldown]
    for _ in range(5):
        clock.advance(b.retry_at - clock())
        assert may_go(b)
        b.failure("still down")
        seen.append(b.cooldown)
        assert b.retry_at == clock() + b.cooldown and not may_go(b)
    assert seen == [300, 600, 1200, 1800, 1800, 1800]
    clock.advance(1800)
    assert may_go(b)
    b.success()  # the server is back: closed, and the next outage starts at 5 min again
    for _ in range(THRESHOLD):
        b.failure("down again")
    assert b.cooldown == 300


@pytest.mark.parametrize(("value", "first"), [("1", 1.0), ("0", 0.1), ("-5", 0.1),
                                              ("soon", 300.0), ("45.5", 45.5)])
def test_the_cool_down_comes_from_the_environment(monkeypatch, value, first):
    monkeypatch.setenv("SAITEN_HTTP_COOLDOWN", value)
    clock = FakeClock()
    b = opened(clock)
    assert b.cooldown == first
    clock.advance(first)
    assert may_go(b)
    b.failure("probe failed")
    assert b.cooldown == min(1800, 2 * first)


def test_a_probe_that_never_reports_back_does_not_block_the_server_forever(monkeypatch):
    """A probe whose call was cancelled says neither success nor failure: after one more
    cool-down another probe may go."""
    monkeypatch.setenv("SAITEN_HTTP_COOLDOWN", "60")
    clock = FakeClock()
    b = opened(clock)
    clock.advance(60)
    assert may_go(b)  # the probe goes out… and is never heard of again
    clock.advance(60)
    assert not may_go(b)
    clock.advance(0.25)
    assert may_go(b)


def test_exactly_one_probe_among_many_callers(monkeypatch):
    monkeypatch.setenv("SAITEN_HTTP_COOLDOWN", "10")
    clock = FakeClock()
    b = opened(clock)
    clock.advance(10)
    go = threading.Barrier(16)
    passed: list[bool] = []

    def caller() -> None:
        go.wait()
        passed.append(may_go(b))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(passed) == [False] * 15 + [True]


def test_the_message_says_since_when_and_until_when_in_wall_clock_time(monkeypatch):
    monkeypatch.delenv("SAITEN_HTTP_COOLDOWN", raising=False)
    clock = FakeClock(start=5.0)  # a monotonic reading: nothing like the time of day
    b = opened(clock)
    clock.advance(120)
    w0 = time.time()
    with pytest.raises(CircuitOpen) as err:
        b.before("judge")
    w1 = time.time()
    msg = str(err.value)

    def hhmm(t: float) -> set[str]:
        return {time.strftime("%H:%M", time.localtime(t + d)) for d in (w0 - w1, 0)}

    since = msg.split("since ")[1].split(",")[0]
    retry = msg.split("retrying at ")[1].split(" ")[0]
    assert since in hhmm(w1 - 120) and retry in hhmm(w1 + 180), msg
    assert msg.endswith(f"({THRESHOLD} failed attempts in a row at http://judge.test:80; "
                        "last: no answer 2)")
    monkeypatch.setenv("SAITEN_HTTP_COOLDOWN", "30")  # short cool-downs show seconds
    b = opened(FakeClock())
    with pytest.raises(CircuitOpen, match=r"since \d\d:\d\d:\d\d, retrying at \d\d:\d\d:\d\d"):
        b.before("judge")


def test_the_default_clock_is_monotonic_and_the_registry_is_per_origin():
    assert Breaker("http://a:1").clock is time.monotonic
    B.reset()
    a = B.breaker("http://a:1")
    assert B.breaker("http://a:1") is a and B.breaker("http://b:1") is not a
    driven = B.install(Breaker("http://a:1", clock=FakeClock()))
    assert B.breaker("http://a:1") is driven
    B.reset()
    assert B.breaker("http://a:1") not in (a, driven)
    B.reset()
