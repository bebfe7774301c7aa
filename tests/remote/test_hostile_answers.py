"""What a hostile server says never becomes a score or a leak (issue N.2, N.3), with the real
judge and HTTP VLM against the fake server on 127.0.0.1: out-of-range and non-plain numbers
make their axis abstain (with why, never clamped) and a card with none abstains; the key,
sent (bound to a host reached through the fake server as the user's proxy) and echoed back
in any encoding, survives in no card; a key file others can read is warned about."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from helpers.fakeapi import ENCODINGS, FAKE_KEY, HOSTILE_VALUES, RUBRIC

from scoring.core.cards import AXES, ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine
from scoring.remote.echo import echoes
from scoring.remote.keys import WITHHELD, KeyConfigError, key_for
from scoring.sources import ScoreContext, create

pytest_plugins = ["helpers.fixtures_http"]

PRIOR = [[ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9},
                    extras={"rating": {"explicit": 0.8}})]]
IMAGE = np.full((16, 16, 3), 0.5, np.float32)


def judge(url: str, tmp_path, **kw):
    return create("judge", base_url=url, model="fake-judge", timeout=5, max_retries=0,
                  cache=tmp_path / "cache.sqlite", cost_log=tmp_path / "cost.jsonl", **kw)


def vlm(url: str):
    return create("vlm-http", base_url=url, model="fake-vlm", method="generate",
                  comment=False, max_attempts=1, timeout=5)


def answer(**values: object) -> dict:
    return {"kind": "ok", "content": json.dumps({**RUBRIC, **values})}


def test_no_valid_axis_abstains_with_each_reason_and_is_not_cached(fakeapi, tmp_path):
    fakeapi.script(default=answer(**HOSTILE_VALUES))
    (card,), = judge(fakeapi.url, tmp_path).score([IMAGE], ScoreContext(prior=PRIOR))
    (vcard,), = vlm(fakeapi.url).score([IMAGE])
    for c in (card, vcard):
        assert not c.ok and "no valid score: " in c.abstained
        for axis, why in (("overall", "150 is outside 0–100"),
                          ("erotic", "'100/0.0001' is not a plain number"),
                          ("composition", "99999 is outside"), ("appeal", "1e+300 is outside"),
                          ("typeset", "-5 is outside")):
            assert f"{axis} {why}" in c.abstained
    fakeapi.script()  # a fair answer now: the bad one was not cached
    (again,), = judge(fakeapi.url, tmp_path).score([IMAGE], ScoreContext(prior=PRIOR))
    assert again.ok and again.axes["overall"] == RUBRIC["overall"]


@pytest.mark.parametrize("value", [150, 99999, 1e300, "100/0.0001", "8/10", -1, "NaN"])
def test_an_out_of_range_overall_never_passes(fakeapi, tmp_path, value):
    fakeapi.script(default=answer(overall=value))
    (card,), = judge(fakeapi.url, tmp_path).score([IMAGE], ScoreContext(prior=PRIOR))
    assert card.ok and "overall" not in card.axes and card.axes["erotic"] == RUBRIC["erotic"]
    assert "overall" in card.extras["invalid"]
    v = combine([*PRIOR[0], card], AggregateSettings(min_sources=1))
    assert not v.scored and v.score is None  # nothing earned from garbage
    assert "gave no valid overall" in v.unscored


@pytest.fixture
def bound_key(tmp_path, monkeypatch, fake_server):
    """The key bound to judge.example and vlm.example (http allowed), both reached through
    the fake server as the user's HTTP proxy: the key is really sent, and echoed."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "keys.toml").write_text(
        '[hosts."judge.example"]\nenv = "XAI_API_KEY"\nhttp = true\n'
        '[hosts."vlm.example"]\nenv = "XAI_API_KEY"\nhttp = true\n')
    os.chmod(config / "keys.toml", 0o600)
    proxy = f"http://127.0.0.1:{fake_server.port}"
    for k, v in {"SAITEN_CONFIG_DIR": str(config), "XAI_API_KEY": FAKE_KEY,
                 "HTTP_PROXY": proxy, "http_proxy": proxy}.items():
        monkeypatch.setenv(k, v)
    for k in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
    return FAKE_KEY


def texts(card: ScoreCard) -> list[str]:
    return [card.comment, card.raw, card.abstained or "", *card.reasons,
            json.dumps(card.extras, ensure_ascii=False)]


@pytest.mark.parametrize("how", ENCODINGS)
def test_a_key_echoed_in_any_encoding_survives_in_no_card(fakeapi, bound_key, tmp_path, how):
    fakeapi.script(default={"kind": "echo_key", "encoding": how})
    (card,), = judge("http://judge.example/v1", tmp_path).score([IMAGE],
                                                               ScoreContext(prior=PRIOR))
    (vcard,), = vlm("http://vlm.example/v1").score([IMAGE])
    sent = [r["headers"].get("Authorization") for r in fakeapi.requests()]
    assert sent == [f"Bearer {FAKE_KEY}"] * 2  # the key went, and came back
    for c in (card, vcard):
        assert not any(echoes(t, [FAKE_KEY]) for t in texts(c)), texts(c)
        assert FAKE_KEY[4:14] not in json.dumps(c.to_dict(), ensure_ascii=False)
        if how not in ("verbatim", "reversed-case"):
            assert WITHHELD in c.raw or WITHHELD in (c.abstained or "")
    cost = (tmp_path / "cost.jsonl").read_text()
    assert not echoes(cost, [FAKE_KEY]) and FAKE_KEY[4:14] not in cost


def test_a_key_file_others_can_read_is_warned_about(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    config = tmp_path / "config"
    config.mkdir()
    key = config / "vllm_key"
    key.write_text(FAKE_KEY)
    keys = config / "keys.toml"
    keys.write_text(f'[hosts."vllm.lan"]\nfile = "{key}"\n')
    monkeypatch.setenv("SAITEN_CONFIG_DIR", str(config))
    os.chmod(key, 0o644)
    os.chmod(keys, 0o600)
    hk = key_for("https://vllm.lan/v1")
    assert hk.value == FAKE_KEY
    assert hk.why.endswith(f"warning: the key file {key} can be read by other users (mode "
                           f"644): run chmod 600 {key}")
    os.chmod(key, 0o600)
    assert "warning" not in key_for("https://vllm.lan/v1").why
    os.chmod(keys, 0o666)  # anyone could send the key elsewhere
    caplog.clear()
    key_for("https://vllm.lan/v1")
    assert f"the keys file {keys} can be changed by other users (mode 666)" in caplog.text
    os.chmod(keys, 0o600)
    key.write_text("x" * 5000)  # not a key: never read whole
    with pytest.raises(KeyConfigError, match="larger than 4,096 bytes"):
        key_for("https://vllm.lan/v1")
    assert FAKE_KEY not in caplog.text


def test_level_logprobs_that_are_no_log_probability_are_no_vote(fakeapi):
    fakeapi.script(default={"kind": "logprobs", "top": {"9": 50.0, "1": float("nan"),
                                                        "5": -0.1}})
    src = create("vlm-http", base_url=fakeapi.url, model="fake-vlm", method="logprob",
                 comment=False, timeout=5)
    (card,), = src.score([IMAGE])
    assert card.ok and all(0 <= card.axes[a] <= 100 for a in card.axes)
    assert set(card.axes) <= set(AXES)
    probs = card.extras["level_probs"]["overall"]
    assert probs["5"] == pytest.approx(1.0) and probs["9"] == 0.0  # 50.0 and NaN: ignored
