"""What the one HTTP client sends and how long it may take, against real servers on 127.0.0.1:
no ambient headers or keys, no redirects, proxies never for this machine (NO_PROXY honoured
for others), the circuit breaker shared across calls, a budget checked with the request's
own size, a key echoed in an answer redacted, and messages with the real elapsed time."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from helpers.clock import FakeClock
from helpers.fakeapi import FAKE_KEY, FakeAPI, assert_no_secret

from scoring.remote import Budget, BudgetExhausted, Prices, Remote, RemoteError, breaker
from scoring.remote.transport import origin
from scoring.sources import ScoreContext, create

pytest_plugins = ["helpers.fixtures_http"]

MSG = [{"role": "user", "content": "hello"}]
HUNG = 60  # seconds a hung server holds each request: far beyond every bound below
SLACK = 10.0  # scheduling slack of a wall-time bound: generous on a loaded 2-core machine
DECOYS = {"OPENAI_API_KEY": "sk-decoy-openai-0123456789abcdef",
          "OPENAI_ORG_ID": "org-decoy0123456789", "OPENAI_PROJECT_ID": "proj_decoy0123456789",
          "OPENAI_ADMIN_KEY": "sk-admin-decoy-0123456789",
          "OPENAI_CUSTOM_HEADERS": "Authorization: Bearer decoy-custom-0123456789\nX-Decoy: 1",
          "OPENAI_BASE_URL": "http://127.0.0.1:9/decoy", "HF_TOKEN": "hf_decoy0123456789abcdef",
          "XAI_API_KEY": FAKE_KEY}


@pytest.fixture
def other_server():
    """A second server: where a redirect or a proxy would send requests."""
    server = FakeAPI()
    try:
        server.script()
        yield server
    finally:
        server.stop()


def headers(req: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in req["headers"].items()}


def test_a_keyless_call_carries_nothing_from_the_environment(fakeapi, monkeypatch):
    for k, v in DECOYS.items():
        monkeypatch.setenv(k, v)
    Remote(fakeapi.url, timeout=2).chat(model="m", messages=MSG)
    (req,) = fakeapi.requests()
    h = headers(req)
    assert "authorization" not in h and not [k for k in h if "openai" in k or "stainless" in k]
    assert req["path"] == "/v1/chat/completions"
    for value in DECOYS.values():
        for token in [value, *(t for t in value.split() if len(t) >= 8)]:
            assert token not in str(req), token


def test_a_redirect_is_not_followed_and_nothing_is_re_sent(fakeapi, other_server):
    fakeapi.script(default={"kind": "redirect", "code": 307,
                            "location": f"{other_server.url}/chat/completions"})
    r = Remote(fakeapi.url, api_key=FAKE_KEY, timeout=2)
    with pytest.raises(RemoteError, match=r"HTTP 307: the server redirects to .* not followed"):
        r.chat(model="m", messages=[{"role": "user", "content": "data:image/png;base64,AAAA"}])
    assert len(fakeapi.requests()) == 1 and other_server.requests() == []


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_a_proxy_is_never_used_for_this_machine(fakeapi, other_server, monkeypatch, var):
    for v in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, f"http://127.0.0.1:{other_server.port}")
    for url in (fakeapi.url, fakeapi.url.replace("127.0.0.1", "localhost")):
        assert Remote(url, timeout=2).chat(model="m", messages=MSG).content
    assert len(fakeapi.requests()) == 2 and other_server.requests() == []


def test_other_hosts_use_the_users_proxy_and_no_proxy_is_honoured(other_server, monkeypatch):
    for v in ("HTTP_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{other_server.port}")
    url = "http://judge.saiten.test/v1"  # resolves nowhere: only the proxy can answer
    assert Remote(url, timeout=2).chat(model="m", messages=MSG).content
    (req,) = other_server.requests()
    assert req["path"] == "http://judge.saiten.test:80/v1/chat/completions"
    other_server.script()
    monkeypatch.setenv("no_proxy", "example.com,.saiten.test")
    with pytest.raises(RemoteError, match=r"connection failed \(direct\)"):
        Remote(url, timeout=2, max_retries=0).chat(model="m", messages=MSG)
    assert other_server.requests() == []


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


def test_the_budget_is_checked_with_the_requests_own_size(fakeapi):
    big = [{"role": "user", "content": "構図" * 900_000}]  # 5.4 MB of prompt
    prices = Prices({"m": {"input": 0.20, "output": 0.50}})
    r = Remote(fakeapi.url, timeout=2, prices=prices, budget=Budget(max_usd=1.0))
    with pytest.raises(BudgetExhausted, match=r"could cost up to \$1\.08"):
        r.chat(model="m", messages=big, max_tokens=400)
    assert fakeapi.requests() == [] and r.budget.usd == 0 and r.budget.reserved == 0
    assert r.chat(model="m", messages=MSG, max_tokens=400).content
    assert r.budget.reserved == 0 and len(fakeapi.requests()) == 1


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


def test_a_hung_vlm_server_costs_two_attempts_per_batch_then_nothing(fakeapi, monkeypatch):
    """K: 3 × 60 s per image and nothing carried over; now 2 attempts for the first image,
    the rest of the batch skipped, the next batch abstaining at once."""
    monkeypatch.delenv("SAITEN_HTTP_COOLDOWN", raising=False)  # 5 min: outlasts this test
    fakeapi.script(default={"kind": "delay", "seconds": HUNG})
    images = [np.full((8, 8, 3), v, np.float32) for v in (0.1, 0.3, 0.5, 0.7, 0.9)]
    vlm = create("vlm-http", base_url=fakeapi.url, model="m", timeout=0.5, method="generate",
                 comment=False)
    t = time.monotonic()
    out = vlm.score(images, ScoreContext())
    spent = time.monotonic() - t
    assert all(not c[0].ok for c in out) and spent < 2 * 0.5 + SLACK
    took = re.search(r"gave up after 2 attempts in ([0-9.]+) s", out[0][0].abstained)
    assert took and 1.0 <= float(took[1]) <= spent + 0.05  # the real elapsed time
    assert "VLM server unreachable since" in out[1][0].abstained
    assert out[4][0].abstained.startswith("skipped: ")
    assert len(fakeapi.requests()) == 3  # 2 attempts, then 1 more of image 1 opens it
    again = create("vlm-http", base_url=fakeapi.url, model="m", timeout=0.5,
                   method="generate").score(images, ScoreContext())
    assert "unreachable since" in again[0][0].abstained  # at once: nothing more was sent
    assert len(fakeapi.requests()) == 3


def test_the_cli_never_spends_past_max_usd(fakeapi, tmp_path):
    """On the real CLI: each judge call could cost up to ~$0.012 at grok-4's prices (its
    prompt's bytes plus 400 answer tokens); with $0.018 the third one is not sent."""
    from helpers.run_cli import run

    from scoring.batch.cli import SAMPLES

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.jpg", "chelsea.jpg", "broken_black.png", "broken_blurred.jpg"):
        (photos / name).write_bytes((SAMPLES / name).read_bytes())
    fakeapi.script(default={"kind": "ok", "usage": {"prompt_tokens": 1000,
                                                    "completion_tokens": 50}})
    costs = tmp_path / "cost.jsonl"
    r = run("score", str(photos), "--sources", "nudenet,technical,judge",
            "--out", str(tmp_path / "out"),
            "--option", f"judge.base_url={fakeapi.url}", "--option", "judge.model=grok-4",
            "--option", "judge.max_usd=0.018", "--option", f"judge.cost_log={costs}",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spent = [json.loads(x)["usd"] for x in costs.read_text().splitlines()]
    assert len(spent) == 2 == len(fakeapi.requests()) and sum(spent) <= 0.018
    report = (tmp_path / "out" / "report.jsonl").read_text()
    assert "this call could cost up to $0.01" in report and "of max $0.0180" in report
