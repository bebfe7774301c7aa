"""The bounded call (`scoring.remote.transport`, `Remote`) against a real HTTP server on
127.0.0.1 that injects faults: the key only in the Authorization header, transient faults
retried within bounds, a dead server ending in a clear error within the wall time (the
retries the server really saw), junk and client errors not retried, a rejected parameter or
response format dropped once and remembered, the circuit breaker shared across calls, a key
echoed in an answer or an error redacted, Retry-After read, and messages with the real
elapsed time."""

from __future__ import annotations

import json
import time

import pytest
from helpers.calls import MSG, remote, timed
from helpers.clock import FakeClock
from helpers.fakeapi import FAKE_KEY, assert_no_secret

from scoring.remote import CostLog, ParamRejected, Remote, RemoteError, breaker, redact, retry_after
from scoring.remote.transport import origin

pytest_plugins = ["helpers.fixtures_http"]

HUNG = 60  # seconds a hung server holds each request: far beyond every bound below
SLACK = 10.0  # scheduling slack of a wall-time bound: generous on a loaded 2-core machine


def test_plain_call_sends_key_only_in_the_auth_header(fakeapi):
    r = remote(fakeapi)
    reply = r.chat(model="m", messages=MSG, temperature=0)
    assert json.loads(reply.content)["overall"] == 65 and reply.attempts == 1
    assert reply.usage["prompt_tokens"] > 0
    (req,) = fakeapi.requests()
    auth = {k.lower(): v for k, v in req["headers"].items()}["authorization"]
    assert auth == f"Bearer {FAKE_KEY}"
    assert_no_secret(req["body"], repr(r), str(reply.data))


@pytest.mark.parametrize(("fault", "min_s"), [
    ({"kind": "status", "code": 429, "retry_after": "0.6"}, 0.6),  # Retry-After honoured
    ({"kind": "status", "code": 500}, 0.0),
    ({"kind": "status", "code": 503}, 0.0),
    ({"kind": "reset"}, 0.0),
    ({"kind": "delay", "seconds": HUNG}, 1.0),  # beyond the 1 s timeout
    ({"kind": "drip", "interval": 0.25}, 1.0),  # bytes keep coming, never within 1 s
])
def test_one_transient_fault_is_retried_once_within_bounds(fakeapi, fault, min_s):
    fakeapi.script(fault)
    reply, secs = timed(lambda: remote(fakeapi).chat(model="m", messages=MSG))
    assert not isinstance(reply, Exception), reply
    assert reply.attempts == 2 and len(fakeapi.requests()) == 2  # the fault cost one attempt
    first, second = (r["time"] for r in fakeapi.requests())
    assert second - first >= min_s  # as the server saw it: the wait or the timeout was kept
    assert min_s <= secs < min_s + SLACK


@pytest.mark.parametrize("fault", [
    {"kind": "status", "code": 500}, {"kind": "reset"}, {"kind": "delay", "seconds": HUNG},
    {"kind": "drip", "interval": 0.25}, {"kind": "status", "code": 429, "retry_after": "0.2"},
])
def test_a_dead_server_ends_in_a_clear_error_within_the_wall_time(fakeapi, fault):
    fakeapi.script(default=fault)
    err, secs = timed(lambda: remote(fakeapi, max_retries=2).chat(model="m", messages=MSG))
    assert isinstance(err, RemoteError) and not isinstance(err, ParamRejected)
    assert len(fakeapi.requests()) == 3 == err.attempts
    assert secs < 3 * 1.0 + SLACK  # wall time = timeout × attempts, plus scheduling slack
    assert "attempts" in str(err)


def test_a_long_retry_after_stops_at_once_instead_of_sleeping(fakeapi):
    fakeapi.script(default={"kind": "status", "code": 429, "retry_after": "120"})
    err, secs = timed(lambda: remote(fakeapi).chat(model="m", messages=MSG))
    assert isinstance(err, RemoteError) and err.status == 429
    assert "wait 120 s" in str(err) and "stopped at the 3 s time bound" in str(err)
    assert len(fakeapi.requests()) == 1 == err.attempts and secs < SLACK  # no 120 s sleep


def test_junk_and_client_errors_are_not_retried(fakeapi):
    fakeapi.script({"kind": "junk"}, {"kind": "status", "code": 404, "message": "no model m"})
    r = remote(fakeapi)
    with pytest.raises(RemoteError, match="not a chat completion"):
        r.chat(model="m", messages=MSG)
    with pytest.raises(RemoteError, match="HTTP 404"):
        r.chat(model="m", messages=MSG)
    assert len(fakeapi.requests()) == 2


def test_a_server_echoing_the_key_never_gets_it_into_errors_or_the_cost_log(fakeapi, tmp_path):
    fakeapi.script(default={"kind": "status", "code": 401,
                            "message": f"Incorrect API key provided: {FAKE_KEY}"})
    log = CostLog(tmp_path / "cost.jsonl", [FAKE_KEY])
    with pytest.raises(RemoteError) as info:
        remote(fakeapi, cost_log=log).chat(model="m", messages=MSG)
    assert "401" in str(info.value) and "key" in str(info.value)
    assert_no_secret(str(info.value), repr(info.value), (tmp_path / "cost.jsonl").read_text())


def test_a_key_echoed_in_the_answer_is_redacted_before_anyone_reads_it(fakeapi):
    fakeapi.script(default={"kind": "echo_key"})
    reply = Remote(fakeapi.url, api_key=FAKE_KEY, timeout=2).chat(model="m", messages=MSG)
    assert "your key *** looks fine" in reply.content
    assert_no_secret(reply.content, reply.data, reply.choice)
    assert_no_secret(reply.content, key=FAKE_KEY[4:24])
    for echo in ({"part": [4, 30]}, {"escaped": True}, {"part": [0, 20], "escaped": True}):
        fakeapi.script(default={"kind": "echo_key", **echo})
        reply = Remote(fakeapi.url, api_key=FAKE_KEY, timeout=2).chat(model="m", messages=MSG)
        assert "your key *** looks fine" in reply.content, (echo, reply.content)
        assert_no_secret(reply.content, reply.data, key=FAKE_KEY[4:14])


def test_a_rejected_parameter_is_dropped_and_remembered(fakeapi):
    fakeapi.script(default={"kind": "reject_param", "param": "temperature"})
    r = remote(fakeapi)
    with pytest.raises(ParamRejected) as info:
        r.chat(model="m", messages=MSG, temperature=0.2)
    assert info.value.param == "temperature"
    assert r.ask(model="m", messages=MSG, temperature=0.2).content
    assert r.ask(model="m", messages=MSG, temperature=0.2).content
    sent = ["temperature" in b for b in fakeapi.bodies()]
    assert sent == [True, True, False, False]  # one retry without it, then never again


def test_response_format_falls_back_once_from_json_schema_like_llama_cpp_server(fakeapi):
    fakeapi.script(default={"kind": "reject_json_schema"})
    r = remote(fakeapi)
    schema = {"type": "object", "properties": {"overall": {"type": "integer"}}}
    for _ in range(2):
        assert r.ask(schema=schema, model="m", messages=MSG).content
    kinds = [b["response_format"]["type"] for b in fakeapi.bodies()]
    assert kinds == ["json_schema", "json_object", "json_object"]  # 500 not retried
    assert fakeapi.bodies()[1]["response_format"]["schema"] == schema


def test_the_circuit_breaker_opens_then_probes_after_the_cool_down(fakeapi, monkeypatch):
    """A hung server, then calls on the breaker's clock (driven here): after 3 timed-out
    attempts every caller fails at once, sending nothing, until the 5-minute cool-down is
    over; the one probe fails and doubles it; after 10 more minutes the recovered server
    answers again. (Every rule of the breaker to the second: tests/remote/test_breaker.py.)"""
    monkeypatch.delenv("SAITEN_HTTP_COOLDOWN", raising=False)  # the default: 300 s
    clock = FakeClock()
    b = breaker.install(breaker.Breaker(origin(fakeapi.url), clock=clock))
    fakeapi.script(default={"kind": "delay", "seconds": HUNG})
    t = time.monotonic()
    with pytest.raises(RemoteError, match=r"gave up after 3 attempts in [0-9.]+ s"):
        Remote(fakeapi.url, timeout=0.4, backoff=0.01).chat(model="m", messages=MSG)
    assert 1.2 <= time.monotonic() - t < 1.2 + SLACK  # 3 timeouts, not the server's 60 s
    assert len(fakeapi.requests()) == 3 and b.cooldown == 300 and b.retry_at == clock() + 300

    def refused(failed: int = 3, **kw) -> RemoteError:
        said = rf"server unreachable since [0-9:]+, retrying at [0-9:]+ \({failed} failed"
        with pytest.raises(RemoteError, match=said) as e:
            Remote(fakeapi.url, timeout=0.4, **kw).chat(model="m", messages=MSG)
        return e.value

    for _ in range(3):  # another caller of the same server: at once, nothing sent
        assert refused().attempts == 0
    assert len(fakeapi.requests()) == 3
    clock.advance(299.75)
    refused()
    assert len(fakeapi.requests()) == 3
    clock.advance(0.25)  # cool-down over: one probe, which fails: open again, for 10 min
    refused(4, backoff=0.01)
    assert len(fakeapi.requests()) == 4 and b.cooldown == 600
    fakeapi.script()  # the server recovers
    clock.advance(599.75)
    assert refused(4).attempts == 0  # still within the doubled cool-down
    clock.advance(0.25)
    assert Remote(fakeapi.url, timeout=0.4).chat(model="m", messages=MSG).content
    assert Remote(fakeapi.url, timeout=0.4).chat(model="m", messages=MSG).content
    assert len(fakeapi.requests()) == 2 and breaker.breaker(
        fakeapi.url.rsplit("/", 1)[0]).failures == 0


def test_redact_and_retry_after():
    text = f"Authorization: Bearer {FAKE_KEY} and sk-abcdefghijklmnop1234 and key {FAKE_KEY}"
    out = redact(text, [FAKE_KEY])
    assert_no_secret(out) and "sk-abcdefghij" not in out and out.count("***") == 3
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    # the date is to the second, and some time passes before retry_after reads the clock
    assert 30 - 1 - SLACK < retry_after({"retry-after": later}) <= 30
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
