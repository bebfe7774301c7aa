"""What calls may cost and did (`scoring.remote.accounting`), through `Remote` against the
fake server on 127.0.0.1: a budget on calls or USD stops before sending (checked with the
request's own size), cost records sum to the total and failed attempts are logged too, the
price table is written once and read back — and on the real CLI, the judge never spends
past `max_usd`."""

from __future__ import annotations

import json

import pytest
from helpers.calls import MSG, remote

from scoring.remote import Budget, BudgetExhausted, CostLog, Prices, Remote

pytest_plugins = ["helpers.fixtures_http"]


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


def test_the_budget_is_checked_with_the_requests_own_size(fakeapi):
    big = [{"role": "user", "content": "構図" * 900_000}]  # 5.4 MB of prompt
    prices = Prices({"m": {"input": 0.20, "output": 0.50}})
    r = Remote(fakeapi.url, timeout=2, prices=prices, budget=Budget(max_usd=1.0))
    with pytest.raises(BudgetExhausted, match=r"could cost up to \$1\.08"):
        r.chat(model="m", messages=big, max_tokens=400)
    assert fakeapi.requests() == [] and r.budget.usd == 0 and r.budget.reserved == 0
    assert r.chat(model="m", messages=MSG, max_tokens=400).content
    assert r.budget.reserved == 0 and len(fakeapi.requests()) == 1


def test_the_cli_never_spends_past_max_usd(fakeapi, tmp_path):
    """On the real CLI: each judge call could cost up to ~$0.012 at grok-4's prices (its
    prompt's bytes plus 400 answer tokens); with $0.018 the third one is not sent."""
    from helpers.run_cli import run

    from scoring.host.pack import SAMPLES

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
