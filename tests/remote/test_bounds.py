"""Bounded answers (issue N.1) against the fault-injecting server on 127.0.0.1: a body past
the size cap (announced, or arriving without end) and a text past the length cap end the
call at once with a clear abstention, memory never grows with what a server sends, the
answer is parsed inside the call, and a cancel ends the call within a second on every
network path — for the bare transport, the judge and the HTTP VLM alike."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import numpy as np
import pytest
from helpers.calls import MSG, remote, timed
from helpers.fakeapi import RUBRIC

from scoring.core.cards import ScoreCard
from scoring.core.errors import Cancelled
from scoring.core.parse import RAW_EXCERPT
from scoring.remote import RemoteError
from scoring.remote.answer import MAX_CONTENT
from scoring.remote.connection import MAX_BYTES
from scoring.sources import ScoreContext, create

pytest_plugins = ["helpers.fixtures_http"]

MB = 1 << 20
SLACK = 10.0  # scheduling slack of a wall-time bound on a loaded 2-core machine
HOSTILE = [
    ({"kind": "huge", "bytes": 50 * MB}, "the answer is 52.4 MB: Saiten reads at most 4.2 MB"),
    ({"kind": "huge", "bytes": 50 * MB, "in": "body"}, "the answer is 52.4 MB"),
    ({"kind": "endless"}, "the answer went past 4.2 MB and was still arriving"),
    ({"kind": "ok", "content": "x" * (MAX_CONTENT + 1)},
     f"the answer's text is {MAX_CONTENT + 1:,} characters, more than the {MAX_CONTENT:,}"),
]
PRIOR = [[ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9},
                    extras={"rating": {"explicit": 0.8}})]]


@pytest.mark.parametrize(("fault", "why"), HOSTILE)
def test_an_answer_past_the_caps_ends_the_call_unread(fakeapi, fault, why):
    fakeapi.script(default=fault)
    tracemalloc.start()
    try:
        err, secs = timed(lambda: remote(fakeapi, timeout=30).chat(model="m", messages=MSG))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(err, RemoteError) and why in str(err), err
    assert err.attempts == 1 and len(fakeapi.requests()) == 1  # a refusal, not retried
    assert secs < SLACK
    assert peak < 4 * MAX_BYTES  # what was read, never what the server sent (50 MB, ∞)


def test_a_large_answer_within_the_caps_is_read(fakeapi):
    fakeapi.script(default={"kind": "huge", "bytes": MAX_BYTES // 2, "in": "body"})
    reply = remote(fakeapi).chat(model="m", messages=MSG)
    assert json.loads(reply.content)["overall"] == RUBRIC["overall"]


def test_the_answer_is_parsed_inside_the_call(fakeapi):
    where = {}

    def parse(text: str) -> int:
        where["thread"] = threading.current_thread().name
        return json.loads(text)["overall"]

    reply = remote(fakeapi).ask(model="m", messages=MSG, parse=parse)
    assert reply.parsed == RUBRIC["overall"] and where["thread"] == "saiten-remote"


def judge(fakeapi, tmp_path, **kw):
    kw.setdefault("timeout", 30)
    return create("judge", base_url=fakeapi.url, model="fake-judge",
                  cache=tmp_path / "cache.sqlite", cost_log=tmp_path / "cost.jsonl", **kw)


def vlm(fakeapi, **kw):
    kw.setdefault("timeout", 30)
    return create("vlm-http", base_url=fakeapi.url, model="fake-vlm", method="generate",
                  comment=False, max_attempts=1, **kw)


IMAGE = np.full((16, 16, 3), 0.5, np.float32)


@pytest.mark.parametrize(("fault", "why"), HOSTILE)
def test_the_judge_and_the_vlm_abstain_on_a_hostile_answer_with_the_reason(
        fakeapi, tmp_path, fault, why):
    fakeapi.script(default=fault)
    t0 = time.monotonic()
    (card,), = judge(fakeapi, tmp_path).score([IMAGE], ScoreContext(prior=PRIOR))
    (vcard,), = vlm(fakeapi).score([IMAGE])
    assert time.monotonic() - t0 < 2 * SLACK
    for c in (card, vcard):
        assert not c.ok and why in c.abstained, c.abstained
        assert len(c.raw) <= RAW_EXCERPT + 1 and len(c.abstained) < 400


def started(fakeapi, n: int = 1):
    """A cancel check that fires once the server holds `n` requests; it notes when."""
    fired: dict[str, float] = {}

    def interrupted() -> bool:
        if "at" not in fired and len(fakeapi.requests()) >= n:
            fired["at"] = time.monotonic()
        return "at" in fired

    return interrupted, fired


@pytest.mark.parametrize("fault", [
    {"kind": "hold"},                                   # the server keeps the request
    {"kind": "delay", "seconds": 60},                   # answers in a minute
    {"kind": "drip", "interval": 0.3},                  # one byte at a time
    {"kind": "status", "code": 429, "retry_after": "30"},  # asks to wait 30 s
])
@pytest.mark.parametrize("who", ["judge", "vlm-http"])
def test_a_cancel_is_honoured_within_a_second_on_every_network_path(fakeapi, tmp_path, fault,
                                                                    who):
    fakeapi.script(default=fault)
    interrupted, fired = started(fakeapi)
    source = judge(fakeapi, tmp_path) if who == "judge" else vlm(fakeapi)
    ctx = ScoreContext(prior=PRIOR, interrupted=interrupted)
    with pytest.raises(Cancelled):
        source.score([IMAGE], ctx)
    late = time.monotonic() - fired["at"]
    fakeapi.release()
    assert late < 1.0, f"{who} honoured the cancel {late:.2f} s after it"
    assert len(fakeapi.requests()) == 1  # nothing more was sent after it
