"""A batch's patience with one server (`scoring.remote.streak`), against the real fault
server on 127.0.0.1 through `Remote`: after `STOP_AFTER` images in a row failed there the
rest is skipped saying why, a success ends the streak, and a spent budget is not the
server's failure."""

from __future__ import annotations

import pytest
from helpers.calls import MSG

from scoring.remote import STOP_AFTER, Budget, BudgetExhausted, Remote, RemoteError, Streak

pytest_plugins = ["helpers.fixtures_http"]


def ask(remote: Remote):
    return lambda: remote.chat(model="m", messages=MSG)


def test_three_failures_in_a_row_skip_the_rest_saying_why(fakeapi):
    fakeapi.script(default={"kind": "status", "code": 503})
    remote = Remote(fakeapi.url, timeout=1.0, max_retries=0)
    streak = Streak(fakeapi.url)
    assert STOP_AFTER == 3
    for _ in range(STOP_AFTER):
        assert streak.skipped() is None  # the server still gets a try
        with pytest.raises(RemoteError, match="HTTP 503"):
            streak.run(ask(remote))
    why = streak.skipped()
    assert why.startswith(f"skipped: {fakeapi.url} failed 3 images in a row (")
    assert "HTTP 503" in why and len(fakeapi.requests()) == 3


def test_a_success_ends_the_streak(fakeapi):
    fakeapi.script(*[{"kind": "status", "code": 500}] * 2, {"kind": "ok"},
                   *[{"kind": "status", "code": 404, "message": "no model m"}] * 2)
    remote = Remote(fakeapi.url, timeout=1.0, max_retries=0)
    streak = Streak("the server")
    for _ in range(2):
        with pytest.raises(RemoteError):
            streak.run(ask(remote))
    assert streak.run(ask(remote)).content  # the third image scored: a fresh start
    assert streak.errors == []
    for _ in range(2):  # two more (a client error fails an image too): still not three
        with pytest.raises(RemoteError, match="HTTP 404"):
            streak.run(ask(remote))
    assert streak.skipped() is None and len(streak.errors) == 2


def test_a_spent_budget_is_not_the_servers_failure(fakeapi):
    remote = Remote(fakeapi.url, timeout=1.0, budget=Budget(max_calls=1))
    streak = Streak("the server")
    assert streak.run(ask(remote)).content
    for _ in range(STOP_AFTER + 1):
        with pytest.raises(BudgetExhausted):
            streak.run(ask(remote))
    assert streak.skipped() is None and streak.errors == [] and len(fakeapi.requests()) == 1
    with pytest.raises(ValueError):  # not a remote failure at all: passed on, not counted
        streak.run(lambda: int("x"))
    assert streak.errors == []


def test_the_limit_is_the_callers(fakeapi):
    fakeapi.script(default={"kind": "reset"})
    streak = Streak("the judge", limit=1)
    with pytest.raises(RemoteError, match="connection"):
        streak.run(ask(Remote(fakeapi.url, timeout=1.0, max_retries=0)))
    assert streak.skipped().startswith("skipped: the judge failed 1 image in a row")
