"""HttpVLM ("vlm-http") over real HTTP: the fault-injecting server on 127.0.0.1 (a hung one
costing two attempts per batch, then nothing), and a real `llama_cpp.server` serving a tiny
GGUF when the server extras are installed."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import time

import numpy as np
import pytest
from helpers.fakeapi import FAKE_KEY, RUBRIC, assert_no_secret
from PIL import Image as PILImage

from scoring.core.rubric import LEVELS, level_to_score
from scoring.sources import Cancelled, ScoreContext, SourceError, create

pytest_plugins = ["helpers.fixtures_http"]

RED = np.zeros((12, 16, 3), np.float32)
RED[..., 0] = 1.0
BLUE = np.zeros((12, 16, 3), np.float32)
BLUE[..., 2] = 1.0
HUNG = 60  # seconds a hung server holds a request: beyond every bound below
SLACK = 10.0  # scheduling slack of a wall-time bound: generous on a loaded 2-core machine


def vlm(fakeapi, **kw):
    kw.setdefault("timeout", 1.0)
    kw.setdefault("comment", False)
    kw.setdefault("method", "generate")
    return create("vlm-http", base_url=fakeapi.url, model="fake-vlm", **kw)


def sent_image(body: dict) -> np.ndarray:
    (part,) = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))


def test_generate_sends_each_image_as_png_and_scores_the_batch(fakeapi, fake_key):
    out = vlm(fakeapi).score([RED, BLUE], ScoreContext())
    assert [c[0].axes["overall"] for c in out] == [65.0, 65.0]
    assert out[0][0].comment == RUBRIC["comment"] and out[0][0].kind == "vlm"
    bodies = fakeapi.bodies()
    assert len(bodies) == 2
    red, blue = (sent_image(b) for b in bodies)
    assert red.shape == (12, 16, 3) and tuple(red[0, 0]) == (255, 0, 0)
    assert tuple(blue[5, 5]) == (0, 0, 255)
    for b in bodies:
        assert b["temperature"] == 0 and b["model"] == "fake-vlm"
        assert b["response_format"]["json_schema"]["schema"]["required"][-1] == "comment"
    assert_no_secret([r["body"] for r in fakeapi.requests()], out)


@pytest.mark.parametrize("text", ["I'm sorry, but I can't help with that.",
                                  "申し訳ありませんが、この画像の評価はできません。"])
def test_refusals_are_retried_reworded_then_abstain(fakeapi, fake_key, text):
    refusal = {"kind": "ok", "content": text}
    fakeapi.script(refusal, {"kind": "ok"}, refusal, refusal, refusal)
    out = vlm(fakeapi).score([RED, BLUE], ScoreContext())
    assert out[0][0].ok and out[0][0].extras["attempts"] == 2
    assert not out[1][0].ok and out[1][0].abstained.startswith("refused 3 times")
    users = [b["messages"][1]["content"][1]["text"] for b in fakeapi.bodies()]
    assert len(users) == 5 and users[2] != users[3] != users[4]  # reworded


def test_llama_cpp_style_json_schema_rejection_falls_back_once(fakeapi, fake_key):
    fakeapi.script(default={"kind": "reject_json_schema"})
    out = vlm(fakeapi).score([RED, BLUE], ScoreContext())
    assert all(c[0].ok for c in out)
    assert [b["response_format"]["type"] for b in fakeapi.bodies()] == [
        "json_schema", "json_object", "json_object"]


def test_logprob_method_reads_the_level_distribution(fakeapi, fake_key):
    top = {"7": math.log(0.5), "8": math.log(0.25), " 9": math.log(0.05), "Hello": -0.1}
    fakeapi.script(default={"kind": "logprobs", "top": top})
    (card,) = vlm(fakeapi, method="logprob").score([RED], ScoreContext())[0]
    p = {"7": 0.5 / 0.8, "8": 0.25 / 0.8, "9": 0.05 / 0.8}  # renormalised over the levels
    expected = level_to_score(sum(int(k) * v for k, v in p.items()))
    assert card.axes["overall"] == pytest.approx(expected)
    assert set(card.axes) == {"erotic", "composition", "appeal", "typeset", "overall"}
    assert card.extras["level_probs"]["erotic"]["7"] == pytest.approx(0.625)
    assert 0 < card.confidence < 1
    (body,) = fakeapi.bodies()  # every axis in one request: the image is sent once
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["q1", "q2", "q3", "q4", "q5"]
    assert schema["properties"]["q1"]["enum"] == list(range(1, 10))
    question = body["messages"][1]["content"][1]["text"]
    assert all(f"q{k}: Rate the image's {a}" in question for k, a in enumerate(
        ["erotic", "composition", "appeal", "typeset", "overall"], 1))


@pytest.mark.parametrize("comment", ["線画は丁寧だが手が崩れている。",
                                     "I'm sorry, I can't rate explicit content."])
def test_logprob_with_its_comment_is_one_request_per_image(fakeapi, fake_key, comment):
    top = {"7": math.log(0.5), "8": math.log(0.25)}
    fakeapi.script(default={"kind": "logprobs", "top": top, "comment": comment})
    sheet = vlm(fakeapi, method="logprob", comment=True).score([RED, BLUE], ScoreContext())
    bodies = fakeapi.bodies()
    assert len(bodies) == 2  # levels and comment together, the image sent once per image
    schema = bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"][-1] == "comment" and schema["properties"]["comment"]["maxLength"]
    for (card,) in sheet:
        assert card.ok and card.extras["level_probs"]["overall"]["7"] == pytest.approx(2 / 3)
        if "sorry" in comment:  # the levels still vote; a refusing comment is dropped
            assert card.comment == "" and card.extras["comment_refused"] == "I can't rate"
        else:
            assert card.comment == comment


def test_logprob_asks_each_axis_alone_when_the_answer_is_not_json(fakeapi, fake_key):
    top = {"7": math.log(0.5), "8": math.log(0.25)}
    fakeapi.script(default={"kind": "logprobs", "top": top, "json": False})
    (card,) = vlm(fakeapi, method="logprob").score([RED], ScoreContext())[0]
    assert card.ok and card.extras["level_probs"]["overall"]["7"] == pytest.approx(2 / 3)
    bodies = fakeapi.bodies()
    assert len(bodies) == 1 + 5  # the one request, then one per axis
    assert all(b["max_tokens"] == 1 and b["logprobs"] is True and b["top_logprobs"] == 20
               for b in bodies[1:])
    assert len({json.dumps(b["messages"][1]["content"][0]) for b in bodies}) == 1  # same image


def test_a_server_without_logprobs_abstains_saying_so(fakeapi, fake_key):
    fakeapi.script(default={"kind": "logprobs"})
    (card,) = vlm(fakeapi, method="logprob").score([RED], ScoreContext())[0]
    assert not card.ok and "returned no logprobs" in card.abstained
    assert "use the generate method" in card.abstained


@pytest.mark.parametrize(("fault", "words", "sent"), [
    ({"kind": "junk"}, "not a chat completion", 2),  # an answer: not retried
    ({"kind": "reset"}, "connection failed", 3),  # 2 attempts, 1 more: the breaker opens
    ({"kind": "delay", "seconds": HUNG}, "timeout", 3),
    ({"kind": "status", "code": 500}, "HTTP 500", 3),
])
def test_faults_abstain_per_image_within_bounds(fakeapi, fake_key, fault, words, sent):
    fakeapi.script(default=fault)
    t = time.monotonic()
    out = vlm(fakeapi, max_retries=1, timeout=0.5, max_attempts=1).score(
        [RED, BLUE], ScoreContext())
    assert time.monotonic() - t < 2 * (2 * 0.5 + 0.5) + SLACK
    assert all(not c[0].ok and words in c[0].abstained for c in out)
    assert len(fakeapi.requests()) == sent


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(SourceError, match="needs a base_url"):
        create("vlm-http", base_url="", model="")


# -- a real llama_cpp.server --------------------------------------------------------------
@pytest.mark.slow
def test_real_llama_cpp_server_generate_and_logprob(llama_vlm_server, monkeypatch):
    llama_server = llama_vlm_server
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    out = create("vlm-http", base_url=llama_server.url, model="tiny", method="generate",
                 comment=False, max_tokens=120).score([RED, BLUE], ScoreContext())
    for (card,) in out:  # random weights, JSON forced by the server's grammar
        assert card.ok, card.abstained
        assert set(card.axes) == {"erotic", "composition", "appeal", "typeset", "overall"}
    digits = {str(llama_server.tokenize(d)[0]): 8 for d in LEVELS}  # lift digits into top-20
    (card,) = create("vlm-http", base_url=llama_server.url, model="tiny", method="logprob",
                     comment=False, extra={"logit_bias": digits}).score([RED], ScoreContext())[0]
    assert card.ok, card.abstained
    assert all(0 <= v <= 100 for v in card.axes.values())
    assert all(abs(sum(d.values()) - 1) < 1e-6 for d in card.extras["level_probs"].values())


def test_cancel_ends_a_slow_request_at_once(fakeapi, fake_key):
    """Cancelled while the server holds the request (it has it, and answers in 60 s)."""
    fakeapi.script(default={"kind": "delay", "seconds": HUNG})
    ctx = ScoreContext(interrupted=lambda: bool(fakeapi.requests()))
    t = time.monotonic()
    with pytest.raises(Cancelled):
        vlm(fakeapi, timeout=HUNG / 2).score([RED, BLUE], ctx)
    assert time.monotonic() - t < SLACK and len(fakeapi.requests()) == 1


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
