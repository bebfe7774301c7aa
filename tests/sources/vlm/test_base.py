"""What every VLM backend shares (`scoring.sources.vlm.base`): the catalogue's names for the
models it knows, and the generate loop of `VLMSource` — one card per repeat, the taggers'
tags in the prompt only when asked, at least one attempt — here through the HTTP backend
against the fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np

from scoring.core.cards import ScoreCard
from scoring.sources import ScoreContext, create

pytest_plugins = ["helpers.fixtures_http"]

RED = np.zeros((12, 16, 3), np.float32)
RED[..., 0] = 1.0


def vlm(fakeapi):
    return create("vlm-http", base_url=fakeapi.url, model="fake-vlm", timeout=1.0,
                  method="generate", comment=False)


def test_known_models_get_the_names_the_default_weights_use():
    from scoring.sources.vlm.base import model_label

    assert model_label("thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-Q4_K_M", gguf=True) == "qwen-gguf"
    assert model_label("llama-joycaption-beta-one-hf-llava-nf4") == "joycaption"
    assert model_label("ToriiGate-v0.4-2B") == "toriigate"
    assert model_label("Qwen2-VL-2B-Instruct") == "Qwen2-VL-2B-Instruct"  # not a GGUF
    assert model_label("my-model") == "my-model"


def test_generate_makes_one_card_per_repeat_with_the_tags_only_when_asked(fakeapi, fake_key):
    prior = [[ScoreCard(source="wd", kind="tagger", tags={"cherry_blossoms": 0.9})]]
    (cards,) = vlm(fakeapi).score([RED], ScoreContext(prior=prior, repeats=2))
    assert [(c.repeat, c.ok, c.axes["overall"]) for c in cards] == [(0, True, 65.0),
                                                                    (1, True, 65.0)]
    bodies = fakeapi.bodies()
    assert len(bodies) == 2
    assert all("[wd] tags: cherry_blossoms" in json.dumps(b["messages"]) for b in bodies)
    fakeapi.script()
    vlm(fakeapi).score([RED], ScoreContext(prior=prior, options={"use_tags": False}))
    (body,) = fakeapi.bodies()
    assert "cherry_blossoms" not in json.dumps(body["messages"])


def test_max_attempts_below_one_still_asks_once(fakeapi, fake_key):
    fakeapi.script(default={"kind": "ok", "content": "I'm sorry, I can't."})
    (card,) = vlm(fakeapi).score([RED], ScoreContext(options={"max_attempts": 0}))[0]
    assert card.abstained == "refused 1 times: \"I'm sorry, I can't.\""
    assert len(fakeapi.bodies()) == 1
