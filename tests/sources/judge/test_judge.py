"""The text-only judge over real HTTP on 127.0.0.1: what reaches the server (never an image,
never the key), cache, cost records, budget, two-stage band, G-Eval, faults."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest
from helpers.fakeapi import FAKE_KEY, RUBRIC, assert_no_secret

from scoring.core.cards import ScoreCard
from scoring.remote import Prices
from scoring.sources import Cancelled, ScoreContext, create
from scoring.sources.judge.judge import PrivacyError, assert_text_only, prior_score

pytest_plugins = ["helpers.fixtures_http"]

IMAGES = [np.full((8, 8, 3), v, np.float32) for v in (0.1, 0.4, 0.7, 0.9)]
PRICES = Prices({"fake-judge": {"input": 1.0, "output": 4.0}})
USAGE = {"prompt_tokens": 500, "completion_tokens": 50}  # $0.0007 per call
HUNG = 60  # seconds a hung server holds a request: beyond every bound below
SLACK = 10.0  # scheduling slack of a wall-time bound: generous on a loaded 2-core machine


def prior(overall: float, i: int) -> list[ScoreCard]:
    return [
        ScoreCard(source="wd", kind="tagger", axes={"erotic": 40.0}, tags={
            "1girl": 0.99, f"tag_{i}": 0.9, "smile": 0.7}, extras={"rating": {
                "general": 0.1, "questionable": 0.2, "explicit": 0.7}}),
        ScoreCard(source="qwen", kind="vlm", axes={"overall": overall},
                  comment=f"構図が安定している {i}"),
    ]


def sheet(*overall: float) -> list[list[ScoreCard]]:
    return [prior(o, i) for i, o in enumerate(overall)]


def judge(fakeapi, tmp_path, **kw):
    kw.setdefault("timeout", 1.0)
    kw.setdefault("backoff", 0.05)
    return create("judge", base_url=fakeapi.url, model="fake-judge", prices=PRICES,
                  cost_log=tmp_path / "judge_cost.jsonl", cache=tmp_path / "cache.sqlite", **kw)


def run(j, prior_sheet, images=IMAGES):
    return j.score(images[:len(prior_sheet)], ScoreContext(prior=prior_sheet))


def test_judges_each_image_from_text_only_and_never_sends_the_key(fakeapi, fake_key, tmp_path):
    j = judge(fakeapi, tmp_path)
    out = run(j, sheet(50, 60))
    assert [len(c) for c in out] == [1, 1]
    card = out[0][0]
    assert card.ok and card.kind == "judge" and card.weight == 1.1
    assert card.axes == {k: float(v) for k, v in RUBRIC.items() if k != "comment"}
    assert card.comment == RUBRIC["comment"]
    reqs = fakeapi.requests()
    assert len(reqs) == 2
    for i, req in enumerate(reqs):
        body = json.loads(req["body"])
        assert_text_only(body)
        assert all(isinstance(m["content"], str) for m in body["messages"])
        assert "image_url" not in req["body"] and "base64" not in req["body"]
        assert "explicit (0.70)" in req["body"] and f"tag_{i}" in req["body"]
        assert f"構図が安定している {i}" in body["messages"][1]["content"]
        assert body["temperature"] == 0.2 and body["response_format"]["type"] == "json_schema"
        assert out.prompts[i] == j.prompt_text(body["messages"])  # the preview is what was sent
        assert_no_secret(req["body"])
    assert_no_secret(out, (tmp_path / "judge_cost.jsonl").read_text(), out.prompts, repr(j))


def test_image_data_in_the_context_is_refused_before_sending(fakeapi, fake_key, tmp_path):
    leaky = sheet(50)
    leaky[0][1].comment = "see data:image/png;base64," + "iVBORw0KGgo" * 80
    (card,) = run(judge(fakeapi, tmp_path), leaky)[0]
    assert not card.ok and "image" in card.abstained
    assert fakeapi.requests() == []
    with pytest.raises(PrivacyError):
        assert_text_only({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})
    with pytest.raises(PrivacyError):
        assert_text_only({"messages": [{"role": "user", "content": "A" * 600}]})


def test_second_run_is_answered_from_the_cache_and_force_calls_again(fakeapi, fake_key,
                                                                      tmp_path):
    first = run(judge(fakeapi, tmp_path), sheet(50, 60, 70))
    assert len(fakeapi.requests()) == 3
    j2 = judge(fakeapi, tmp_path)  # a new instance: the cache is on disk
    second = run(j2, sheet(50, 60, 70))
    assert len(fakeapi.requests()) == 3  # no second call
    assert [c[0].axes for c in second] == [c[0].axes for c in first]
    assert second.costs.cache_hits == 3 and second.costs.calls == 0 and second.costs.usd == 0
    assert all(c[0].extras["cache_hits"] == 1 for c in second)
    j3 = judge(fakeapi, tmp_path, force=True)
    third = run(j3, sheet(50, 60, 70))
    assert len(fakeapi.requests()) == 6 and third.costs.cache_hits == 0
    records = [json.loads(x) for x in (tmp_path / "judge_cost.jsonl").read_text().splitlines()]
    assert [r["cache_hit"] for r in records] == [False] * 3 + [True] * 3 + [False] * 3


def test_a_changed_prompt_rubric_or_model_is_not_a_cache_hit(fakeapi, fake_key, tmp_path):
    run(judge(fakeapi, tmp_path), sheet(50))
    run(judge(fakeapi, tmp_path), sheet(51))  # the VLM's number is not in the prompt text
    assert len(fakeapi.requests()) == 1
    changed = sheet(50)
    changed[0][1].comment = "別のコメント"
    run(judge(fakeapi, tmp_path), changed)
    ctx = ScoreContext(prior=sheet(50))
    ctx.rubric = ctx.rubric.with_guidance("Be harsher.")
    judge(fakeapi, tmp_path).score(IMAGES[:1], ctx)
    create("judge", base_url=fakeapi.url, model="other", cache=tmp_path / "cache.sqlite",
           timeout=1.0).score(IMAGES[:1], ScoreContext(prior=sheet(50)))
    assert len(fakeapi.requests()) == 4


def test_cost_records_sum_to_the_run_total(fakeapi, fake_key, tmp_path):
    fakeapi.script(default={"kind": "ok", "usage": USAGE})
    j = judge(fakeapi, tmp_path)
    out = run(j, sheet(10, 20, 30, 40))
    records = [json.loads(x) for x in (tmp_path / "judge_cost.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert all(r["model"] == "fake-judge" and r["prompt_tokens"] == 500 for r in records)
    assert sum(r["usd"] for r in records) == pytest.approx(4 * 0.0007)
    assert out.costs.usd == pytest.approx(4 * 0.0007)
    assert "4 calls, 0 cache hits, $0.0028" in out.cost


def test_budget_exhaustion_abstains_for_the_remaining_images(fakeapi, fake_key, tmp_path):
    out = run(judge(fakeapi, tmp_path, max_calls=2), sheet(10, 20, 30, 40))
    assert [c[0].ok for c in out] == [True, True, False, False]
    assert "budget exhausted: 2 of max 2 calls" in out[3][0].abstained
    assert len(fakeapi.requests()) == 2
    fakeapi.script(default={"kind": "ok", "usage": USAGE})
    out = run(judge(fakeapi, tmp_path, max_usd=0.0045, force=True), sheet(10, 20, 30, 40))
    # each call could cost up to $0.0035 and costs $0.0007
    assert [c[0].ok for c in out] == [True, True, False, False]  # .0014 + .0035 > .0045
    assert "up to $0.0035 and $0.0014 of max $0.0045" in out[2][0].abstained
    assert out.costs.usd == pytest.approx(0.0014) and len(fakeapi.requests()) == 2
    out = run(judge(fakeapi, tmp_path, max_usd=0.001, force=True), sheet(10))
    assert "of max $0.0010" in out[0][0].abstained and len(fakeapi.requests()) == 2


def test_two_stage_band_and_top_k(fakeapi, fake_key, tmp_path):
    s = sheet(20, 50, 80, 90)
    assert prior_score(s[1]) == 50
    out = run(judge(fakeapi, tmp_path, band=(40, 60)), s)
    assert [c[0].ok for c in out] == [False, True, False, False]
    assert out[0][0].abstained == "not judged (outside band: prior score 20)"
    assert len(fakeapi.requests()) == 1 and "構図が安定している 1" in fakeapi.requests()[0]["body"]
    out = run(judge(fakeapi, tmp_path, band=(40, 60), top_k=1, force=True), s)
    assert [c[0].ok for c in out] == [False, True, False, True]
    assert "outside band and top-K" in out[2][0].abstained
    out = run(judge(fakeapi, tmp_path, top_k=2, force=True), s)
    assert [c[0].ok for c in out] == [False, False, True, True]


def test_geval_samples_average_and_spread_gives_confidence(fakeapi, fake_key, tmp_path):
    answers = [{**RUBRIC, "overall": v} for v in (50, 60, 70)]
    fakeapi.script(*({"kind": "ok", "content": json.dumps(a)} for a in answers))
    (card,) = run(judge(fakeapi, tmp_path, geval_samples=3, geval_temperature=0.9), sheet(50))[0]
    assert card.axes["overall"] == pytest.approx(60.0) and card.axes["appeal"] == 70
    assert 0 < card.confidence < 1 and card.extras["samples"] == 3
    assert [b["temperature"] for b in fakeapi.bodies()] == [0.9, 0.9, 0.9]
    (plain,) = run(judge(fakeapi, tmp_path, force=True), sheet(50))[0]
    assert plain.confidence is None


@pytest.mark.parametrize(("answer", "why"), [
    ("I'm sorry, but I can't help with rating this content.", "refused"),
    ("The image is nice overall.", "no valid score JSON"),
])
def test_refusals_and_prose_abstain_and_are_not_cached(fakeapi, fake_key, tmp_path, answer, why):
    fakeapi.script(default={"kind": "ok", "content": answer})
    (card,) = run(judge(fakeapi, tmp_path), sheet(50))[0]
    assert not card.ok and card.abstained.startswith(why)
    run(judge(fakeapi, tmp_path), sheet(50))
    assert len(fakeapi.requests()) == 2


def test_prose_wrapped_json_is_extracted(fakeapi, fake_key, tmp_path):
    fakeapi.script(default={"kind": "ok", "content": "Here you go:\n```json\n"
                            + json.dumps(RUBRIC, ensure_ascii=False) + "\n```"})
    (card,) = run(judge(fakeapi, tmp_path), sheet(50))[0]
    assert card.ok and card.axes["overall"] == 65


def test_a_rejected_parameter_gets_one_retry_without_it(fakeapi, fake_key, tmp_path):
    fakeapi.script(default={"kind": "reject_param", "param": "temperature"})
    out = run(judge(fakeapi, tmp_path), sheet(50, 60))
    assert all(c[0].ok for c in out)
    assert ["temperature" in b for b in fakeapi.bodies()] == [True, False, False]


def test_capability_table_leaves_out_what_a_model_rejects(fakeapi, fake_key, tmp_path):
    j = create("judge", base_url=fakeapi.url, model="o3-mini", cache=None, timeout=1.0)
    assert run(j, sheet(50))[0][0].ok
    assert "temperature" not in fakeapi.bodies()[0]


def test_a_dead_server_is_bounded_and_skips_after_three_failures(fakeapi, fake_key, tmp_path):
    fakeapi.script(default={"kind": "reset"})
    t = time.monotonic()
    out = run(judge(fakeapi, tmp_path, max_retries=1), sheet(10, 20, 30, 40))
    assert time.monotonic() - t < SLACK  # refused connections: no timeout is waited
    assert all(not c[0].ok for c in out)
    assert "connection failed" in out[0][0].abstained and "2 attempts" in out[0][0].abstained
    assert out[3][0].abstained.startswith("skipped: the server failed 3 images in a row")
    assert "judge unreachable since" in out[1][0].abstained  # the circuit breaker opened
    assert len(fakeapi.requests()) == 3  # after 3 failed attempts in a row, none more
    assert_no_secret(out, (tmp_path / "judge_cost.jsonl").read_text())


def test_slow_server_times_out_within_bound(fakeapi, fake_key, tmp_path):
    fakeapi.script(default={"kind": "delay", "seconds": HUNG})
    t = time.monotonic()
    (card,) = run(judge(fakeapi, tmp_path, max_retries=1, timeout=0.5), sheet(50))[0]
    assert time.monotonic() - t < 2 * 0.5 + SLACK  # two timeouts, not the server's 60 s
    assert not card.ok and "timeout" in card.abstained
    assert len(fakeapi.requests()) == 2 and "2 attempts" in card.abstained


def test_no_context_no_key_abstain_with_clear_messages(fakeapi, fake_key, tmp_path,
                                                       monkeypatch):
    (card,) = run(judge(fakeapi, tmp_path), [[]])[0]
    assert "nothing to judge" in card.abstained and fakeapi.requests() == []
    monkeypatch.delenv("XAI_API_KEY")
    monkeypatch.setenv("SAITEN_XAI_KEY_FILE", str(tmp_path / "no_such_key"))
    remote_judge = create("judge", cache=None)  # the xAI default: needs a key, never reached
    out = remote_judge.score(IMAGES[:2], ScoreContext(prior=sheet(50, 60)))
    assert all("set the environment variable XAI_API_KEY" in c[0].abstained for c in out)


@pytest.mark.slow
def test_real_llama_cpp_server_as_the_judge(llama_text_server, fake_key, tmp_path):
    def real_judge():
        return create("judge", base_url=llama_text_server.url, model="tiny-judge",
                      cost_log=tmp_path / "cost.jsonl", cache=tmp_path / "cache.sqlite",
                      max_tokens=200, timeout=60)

    j = real_judge()
    out = run(j, sheet(30, 80))
    for (card,) in out:  # random weights, but JSON forced by the server's grammar
        assert card.ok, card.abstained
        assert set(card.axes) == set(RUBRIC) - {"comment"}
        assert all(0 <= v <= 100 for v in card.axes.values())
    records = out.costs.records
    calls = [r for r in records if not r.get("error")]
    assert len(calls) == 2 and all(r["prompt_tokens"] > 100 for r in calls)
    (refused,) = [r for r in records if r.get("error")]  # json_schema → HTTP 500, once
    assert refused["status"] == 500 and "response_format" in refused["error"]
    assert all(r["usd"] == 0 and r["priced"] is False for r in calls)  # a local model is free
    j2 = real_judge()
    again = run(j2, sheet(30, 80))
    assert [c[0].axes for c in again] == [c[0].axes for c in out] and again.costs.calls == 0
    assert_no_secret((tmp_path / "cost.jsonl").read_text(), out)


def test_a_server_echoing_the_key_leaks_it_nowhere(fakeapi, fake_key, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fakeapi.script(default={"kind": "status", "code": 401,
                            "message": f"Incorrect API key provided: {FAKE_KEY}"})
    j = judge(fakeapi, tmp_path)
    out = run(j, sheet(50, 60))
    assert all("HTTP 401" in c[0].abstained for c in out)
    assert_no_secret(out, caplog.text, (tmp_path / "judge_cost.jsonl").read_text(),
                     out.cost, out.costs.records)
    assert "HTTP 401" in caplog.text  # the failure was logged, redacted


def test_a_corrupt_cache_file_is_ignored_not_fatal(fakeapi, fake_key, tmp_path):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 50)
    out = run(judge(fakeapi, tmp_path), sheet(50))
    assert out[0][0].ok and len(fakeapi.requests()) == 1


def test_cancel_stops_a_backoff_wait_at_once(fakeapi, fake_key, tmp_path):
    """The user cancels while the judge waits out a 20 s Retry-After (cancelled the moment
    the server has answered the first request): no second request, no 20 s wait."""
    fakeapi.script(default={"kind": "status", "code": 429, "retry_after": "20"})
    ctx = ScoreContext(prior=sheet(50, 60), interrupted=lambda: bool(fakeapi.requests()))
    t = time.monotonic()
    with pytest.raises(Cancelled):
        judge(fakeapi, tmp_path, timeout=30).score(IMAGES[:2], ctx)
    assert time.monotonic() - t < SLACK and len(fakeapi.requests()) == 1


def test_cancel_releases_a_request_in_flight(fakeapi, fake_key, tmp_path):
    """Cancelled while the server holds the request (it has it, and answers in 60 s)."""
    fakeapi.script(default={"kind": "delay", "seconds": HUNG})
    ctx = ScoreContext(prior=sheet(50), interrupted=lambda: bool(fakeapi.requests()))
    t = time.monotonic()
    with pytest.raises(Cancelled):
        judge(fakeapi, tmp_path, timeout=HUNG / 2).score(IMAGES[:1], ctx)
    assert time.monotonic() - t < SLACK and len(fakeapi.requests()) == 1
