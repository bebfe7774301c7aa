"""scoring.remote against a real HTTP server on 127.0.0.1 that injects faults: bounded wall
time, the retries the server really saw, budget, cost records, and no key anywhere."""

from __future__ import annotations

import json
import time

import pytest
from helpers.fakeapi import FAKE_KEY, assert_no_secret

from scoring.remote import (
    Budget,
    BudgetExhausted,
    CostLog,
    ParamRejected,
    Prices,
    Remote,
    RemoteError,
    redact,
    retry_after,
)

pytest_plugins = ["helpers.fixtures_http"]

MSG = [{"role": "user", "content": "hello"}]
HUNG = 60  # seconds a hung server holds a request (or drips its answer): beyond every bound
SLACK = 10.0  # scheduling slack of a wall-time bound: generous on a loaded 2-core machine


def remote(fakeapi, **kw) -> Remote:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("backoff", 0.1)
    return Remote(fakeapi.url, api_key=FAKE_KEY, seed=0, **kw)


def timed(fn):
    t = time.monotonic()
    try:
        return fn(), time.monotonic() - t
    except RemoteError as e:
        return e, time.monotonic() - t


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


def test_budget_on_calls_stops_before_sending(fakeapi):
    r = remote(fakeapi, budget=Budget(max_calls=2))
    r.chat(model="m", messages=MSG)
    r.chat(model="m", messages=MSG)
    with pytest.raises(BudgetExhausted, match="2 of max 2 calls"):
        r.chat(model="m", messages=MSG)
    assert len(fakeapi.requests()) == 2


def test_budget_on_usd_and_cost_records_sum(fakeapi, tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    fakeapi.script(default={"kind": "ok", "usage": usage})
    prices = Prices({"m": {"input": 2.0, "output": 10.0}})  # $0.004 per call
    log = CostLog(tmp_path / "c.jsonl")
    r = remote(fakeapi, budget=Budget(max_usd=0.0095), prices=prices, cost_log=log)
    for _ in range(2):  # each may cost up to 200 tokens × $10/M + its prompt: $0.0020
        assert r.chat(model="m", messages=MSG, max_tokens=200).usd == pytest.approx(0.004)
    with pytest.raises(BudgetExhausted, match=r"up to \$0.0020 and \$0.0080 of max \$0.0095"):
        r.chat(model="m", messages=MSG, max_tokens=200)  # spent .008 + up to .0020 > .0095
    r.budget.max_usd = 0.008
    with pytest.raises(BudgetExhausted, match=r"\$0.0080 of max \$0.0080"):
        r.chat(model="m", messages=MSG, max_tokens=200)
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and sum(x["usd"] for x in lines) == pytest.approx(0.008)
    assert {x["prompt_tokens"] for x in lines} == {1000} and log.usd == pytest.approx(0.008)
    assert all(x["latency"] >= 0 and x["cache_hit"] is False and x["time"] for x in lines)


def test_failed_attempts_are_logged_too(fakeapi, tmp_path):
    fakeapi.script({"kind": "status", "code": 500})
    log = CostLog(tmp_path / "c.jsonl")
    remote(fakeapi, cost_log=log).chat(model="m", messages=MSG)
    first, second = log.records
    assert first["status"] == 500 and "HTTP 500" in first["error"] and first["usd"] == 0
    assert "error" not in second and second["completion_tokens"] > 0


def test_prices_file_is_written_once_and_then_read(tmp_path):
    p = tmp_path / "prices.json"
    assert Prices.at(p).rate("grok-4-1-fast-non-reasoning")["input"] == 0.20
    p.write_text(json.dumps({"my-model": {"input": 1.0, "output": 1.0}}))
    prices = Prices.at(p)
    assert prices.usd("my-model-latest", {"prompt_tokens": 10**6}) == pytest.approx(1.0)
    assert prices.usd("unknown", {"prompt_tokens": 5}) is None


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
