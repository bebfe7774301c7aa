"""A refusal is a refusal whatever its shape: scripted tiny models
(tests/helpers/models/scripted.py) that, through llama.cpp's real grammar and transformers'
real constrained JSON decoder,
answer every prompt with all zeros and "I'm sorry, I can't rate explicit content." — or,
as the control, with all zeros and a genuine critical comment. Also over HTTP: a real
llama_cpp.server with the same model (response_format), and the fault server's prose."""

from __future__ import annotations

import json

import pytest
from helpers.counting_proxy import CountingProxy
from helpers.models.scripted import CRITIQUE, LEVELS, REFUSAL, Script
from helpers.models.tiny_hf import build_llava, sample_image

from scoring.core.rubric import Rubric
from scoring.ensemble.aggregate import combine_sheet
from scoring.sources import ScoreContext, create
from scoring.sources.vlm.http import data_url

pytest_plugins = ["helpers.models.gguf_models", "helpers.fixtures_http"]  # scripted_gguf, fakeapi

IMAGES = [sample_image(0), sample_image(1, 40)]
AXES = list(Rubric().axes)


@pytest.fixture(scope="module")
def scripted_hf(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("scripted_hf")
    return {"refusing": build_llava(root / "refusing", script=Script(REFUSAL)),
            "critic": build_llava(root / "critic", script=Script(CRITIQUE, levels=LEVELS))}


def llama_source(scripted_gguf, which: str, **kw):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed",
                        exc_type=ImportError)
    return create("vlm-llamacpp", model_path=getattr(scripted_gguf, which),
                  mmproj_path=scripted_gguf.mmproj, n_threads=1, **kw)


def hf_source(scripted_hf, which: str, **kw):
    return create("vlm-transformers", model_dir=scripted_hf[which], **kw)


@pytest.fixture(params=["llama.cpp", "transformers"])
def runtime(request, scripted_gguf, scripted_hf):
    """Make a scripted source of either runtime: runtime("refusing" | "critic", **options)."""
    made = []

    def make(which: str, **kw):
        src = (llama_source(scripted_gguf, which, **kw) if request.param == "llama.cpp"
               else hf_source(scripted_hf, which, **kw))
        made.append(src)
        return src

    yield make
    for s in made:
        s.unload()


def test_a_refusal_forced_into_json_is_retried_then_abstains(runtime):
    src = runtime("refusing", method="generate", comment=False)
    sheet = src.score(IMAGES, ScoreContext())
    for (card,) in sheet:
        # the runtime's own constraint made the model write a complete, valid rubric JSON ...
        answer = json.loads(card.raw, strict=False)
        assert list(answer) == [*AXES, "comment"]
        assert set(answer.values()) == {0, REFUSAL}
        # ... which is no vote: every reworded attempt refused, then the source abstained
        assert not card.ok and not card.axes
        assert card.abstained == f"refused 3 times: {REFUSAL!r}"
        assert card.extras == {"attempts": 3, "refusals": 3}
    verdicts = combine_sheet(sheet)
    assert all(not v.scored and v.score is None for v in verdicts)  # unscored, not 0


def test_a_genuine_low_score_with_a_critical_comment_is_a_vote(runtime):
    src = runtime("critic", method="generate", comment=False)
    for (card,) in src.score(IMAGES, ScoreContext()):
        assert card.ok, card.abstained
        assert card.axes == dict.fromkeys(AXES, 0.0)
        assert card.comment == CRITIQUE
        assert card.extras["attempts"] == 1 and card.extras["refusals"] == 0


def test_logprob_keeps_its_levels_but_not_a_refusing_comment(runtime):
    refusing, critic = (runtime(w, method="logprob", comment=True)
                        for w in ("refusing", "critic"))
    (card,) = refusing.score(IMAGES[:1], ScoreContext())[0]
    assert card.ok and set(card.axes) == set(AXES)  # the level probabilities are the vote
    assert card.comment == "" and card.extras["comment_refused"] == "I can't rate"
    (card,) = critic.score(IMAGES[:1], ScoreContext())[0]
    assert card.comment == CRITIQUE and "comment_refused" not in card.extras


@pytest.mark.slow
def test_a_real_llama_cpp_server_refusing_in_json_abstains(scripted_gguf, tmp_path,
                                                           monkeypatch):
    from helpers.fixtures_http import LlamaServer, llama_server_missing

    if llama_server_missing():
        pytest.skip(llama_server_missing())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    server = LlamaServer(scripted_gguf.refusing, "--clip_model_path", str(scripted_gguf.mmproj),
                         "--chat_format", "llava-1-5", log=tmp_path / "server.log")
    try:
        (card,) = create("vlm-http", base_url=server.url, model="tiny", method="generate",
                         comment=False).score(IMAGES[:1], ScoreContext())[0]
    finally:
        server.stop()
    assert json.loads(card.raw) == {**dict.fromkeys(AXES, 0), "comment": REFUSAL}
    assert not card.ok and card.abstained.startswith("refused 3 times")


@pytest.mark.parametrize("answer", [
    "I'm sorry, but I can't help with rating this image.\n" + json.dumps({"overall": 0}),
    json.dumps({**dict.fromkeys(AXES, 0), "comment": "申し訳ありませんが、評価できません。"}),
])
def test_refusals_around_or_inside_json_over_http_abstain(fakeapi, fake_key, answer):
    fakeapi.script(default={"kind": "ok", "content": answer})
    (card,) = create("vlm-http", base_url=fakeapi.url, model="fake-vlm", method="generate",
                     comment=False, timeout=1.0).score(IMAGES[:1], ScoreContext())[0]
    assert not card.ok and card.abstained.startswith("refused 3 times")
    users = [b["messages"][1]["content"][1]["text"] for b in fakeapi.bodies()]
    assert len(set(users)) == 3  # reworded each time


@pytest.mark.slow
def test_logprob_over_a_real_llama_cpp_server_sends_each_image_once(scripted_gguf, tmp_path,
                                                                   monkeypatch):
    from helpers.fixtures_http import LlamaServer, llama_server_missing

    if llama_server_missing():
        pytest.skip(llama_server_missing())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    server = LlamaServer(scripted_gguf.critic, "--clip_model_path", str(scripted_gguf.mmproj),
                         "--chat_format", "llava-1-5", log=tmp_path / "server.log")
    proxy = CountingProxy(server.port)
    try:
        src = create("vlm-http", base_url=proxy.url(), model="tiny", method="logprob",
                     comment=True)
        src.score(IMAGES[:1], ScoreContext())  # learns the server's response_format once
        proxy.reset()
        sheet = src.score(IMAGES, ScoreContext())
        src.unload()
    finally:
        proxy.close()
        server.stop()
    for (card,) in sheet:
        assert card.ok, card.abstained
        assert card.comment == CRITIQUE  # from the same answer as the levels
        for dist in card.extras["level_probs"].values():  # the model's own distribution
            assert dist == pytest.approx({**dict.fromkeys("123456789", 0.0), **dict(LEVELS)},
                                         abs=1e-3)
    assert proxy.posts == len(IMAGES)  # one request per image: all axes and the comment
    image_bytes = sum(len(data_url(i)) for i in IMAGES)
    assert image_bytes < proxy.sent < 1.5 * image_bytes + 20_000
