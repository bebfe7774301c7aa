"""The llama.cpp VLM backend (`scoring.sources.vlm.llamacpp`) on real llama.cpp with tiny GGUF
models built by the tests; its describe and option checks also without llama.cpp."""

from __future__ import annotations

import base64
import gc
import io
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from scoring.core.cards import ScoreCard
from scoring.core.images import as_rgb, to_pil
from scoring.core.parse import extract_json
from scoring.core.rubric import LEVELS, Rubric, tag_context
from scoring.host.memory import MemoryPolicy
from scoring.sources import ScoreContext, SourceError, create
from scoring.sources.vlm.gguf import read_pair
from scoring.sources.vlm.llamacpp import LlamaCppVLM

try:
    import llama_cpp  # noqa: F401
    HAVE_LLAMA_CPP = True
except ImportError:
    HAVE_LLAMA_CPP = False
needs_llama_cpp = pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="llama-cpp-python is not "
                                     "installed")
pytest_plugins = ["helpers.models.gguf_models"]  # the session fixture `gguf_models`

IMAGES = [np.random.default_rng(i).random((48, 64, 3), dtype=np.float32) for i in range(2)]
PHOTOS = [as_rgb(data.astronaut()), as_rgb(data.chelsea()), as_rgb(data.coffee())]
FAMILIES = ["llava", "qwen"]
LEAN = {"n_threads": 1}  # other test processes share the cores: no spinning thread pools


def pair_of(models, family: str) -> tuple[Path, Path]:
    if family == "llava":
        return models.llava_text, models.llava_mmproj
    return models.qwen_text, models.qwen_mmproj


@pytest.fixture(scope="module")
def sources(gguf_models):
    """One loaded source per family and method, shared by the module, unloaded at the end."""
    made: dict[tuple[str, str], LlamaCppVLM] = {}

    def get(family: str, method: str) -> LlamaCppVLM:
        if (family, method) not in made:
            text, proj = pair_of(gguf_models, family)
            made[family, method] = create("vlm-llamacpp", model_path=text, mmproj_path=proj,
                                          method=method, comment=False, n_threads=1)
        return made[family, method]

    yield get
    for s in made.values():
        s.unload()


# -- scoring end to end ---------------------------------------------------------------------
@needs_llama_cpp
@pytest.mark.parametrize("family", FAMILIES)
def test_generate_scores_each_image_of_a_batch(sources, family):
    src = sources(family, "generate")
    done: list[int] = []
    sheet = src.score(PHOTOS, ScoreContext(progress=done.append))
    assert done == [0, 1, 2]
    assert len(sheet) == len(PHOTOS)
    for cards in sheet:
        assert len(cards) == 1
        card = cards[0]
        assert card.ok, card.abstained
        assert card.source == src.label and card.kind == "vlm"
        assert set(card.axes) == set(Rubric().axes)
        assert all(0 <= v <= 100 and v % 5 == 0 for v in card.axes.values())  # enum levels
        # the raw answer is this image's own single JSON object, forced by the grammar
        obj = json.loads(card.raw, strict=False)
        assert list(obj) == [*Rubric().axes, "comment"]
        assert extract_json(card.raw) == obj
        assert card.extras["attempts"] == 1


@needs_llama_cpp
@pytest.mark.parametrize("family", FAMILIES)
def test_chat_answers_exactly_like_the_chat_handler(sources, family):
    """`chat` evaluates the prompt itself (to keep the system prompt cached between images)
    and must answer exactly what llama-cpp-python's chat handler answers."""
    src = sources(family, "generate")
    rubric, image = Rubric(), PHOTOS[2]
    system, user, schema = rubric.system_prompt(), rubric.user_prompt(), rubric.json_schema()
    png = io.BytesIO()
    to_pil(image).save(png, "PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    src.load()
    handler = src._llm.create_chat_completion(
        messages=[{"role": "system", "content": system},
                  {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                               {"type": "text", "text": user}]}],
        temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=120,
        **src._constraint(schema))["choices"][0]["message"]["content"]
    src.chat(PHOTOS[0], "Another system prompt.", "hi", schema=None, max_tokens=1)  # evict
    cold = src.chat(image, system, user, schema=schema, max_tokens=120)
    warm = src.chat(image, system, user, schema=schema, max_tokens=120)  # all cached
    assert cold == handler
    assert warm == handler


@needs_llama_cpp
@pytest.mark.parametrize("family", FAMILIES)
def test_logprob_scores_each_image_from_level_probabilities(sources, family):
    src = sources(family, "logprob")
    sheet = src.score(PHOTOS)
    assert len(sheet) == len(PHOTOS)
    dists = []
    for cards in sheet:
        (card,) = cards
        assert card.ok, card.abstained
        assert set(card.axes) == set(Rubric().axes)
        assert 0 < card.confidence <= 1
        probs = card.extras["level_probs"]
        for axis, dist in probs.items():
            assert list(dist) == list(LEVELS)
            assert sum(dist.values()) == pytest.approx(1.0, abs=1e-6)
            expected = sum(int(k) * p for k, p in dist.items())
            assert card.axes[axis] == pytest.approx((expected - 1) / 8 * 100)
        dists.append(probs["overall"])
    # the image reaches the model: different photos give different distributions
    assert dists[0] != dists[1] and dists[1] != dists[2]


def evaluated(src, run) -> tuple[object, int]:
    """What `run()` returns and how many prompt tokens llama.cpp decoded for it."""
    import llama_cpp

    src.load()
    llama_cpp.llama_perf_context_reset(src._llm.ctx)
    got = run()
    return got, llama_cpp.llama_perf_context(src._llm.ctx).n_p_eval


@needs_llama_cpp
@pytest.mark.parametrize("family", FAMILIES)
def test_logprob_reuses_the_kv_cache_exactly(sources, family):
    """Axes are evaluated from the cached system+image state; the same image again costs
    only the axis questions; the next image keeps the system prompt. Same numbers as fresh
    evaluations."""
    src = sources(family, "logprob")
    rubric = Rubric()
    system = rubric.system_prompt()
    prefixes = [rubric.logprob_prefix(a) for a in rubric.axes]

    def evict():  # another system prompt and image take the cache
        src.chat(PHOTOS[2], "Another system prompt.", "hi", schema=None, max_tokens=1)

    alone = []
    for p in prefixes[::2]:
        evict()
        alone.append(src.level_probs(PHOTOS[0], system, [p], LEVELS)[0])
    evict()
    cold, n_cold = evaluated(src, lambda: src.level_probs(PHOTOS[0], system, prefixes, LEVELS))
    warm, n_warm = evaluated(src, lambda: src.level_probs(PHOTOS[0], system, prefixes, LEVELS))
    _, n_next = evaluated(src, lambda: src.level_probs(PHOTOS[1], system, prefixes, LEVELS))
    for a, b, c in zip(alone, cold[::2], warm[::2], strict=True):
        assert np.allclose([a[k] for k in LEVELS], [b[k] for k in LEVELS], atol=1e-4)
        assert np.allclose([a[k] for k in LEVELS], [c[k] for k in LEVELS], atol=1e-4)

    llm = src._llm
    _, tail = src._split_prompt(system)
    questions = sum(len(llm.tokenize((p + tail).encode(), add_bos=False, special=True))
                    for p in prefixes)
    system_tokens = len(llm.tokenize(system.encode(), add_bos=False, special=True))
    assert questions + system_tokens < n_cold < questions + 2 * system_tokens  # not per axis
    assert n_warm == questions  # system prompt and image cached
    assert questions < n_next <= n_cold - system_tokens  # system prompt cached, image not


@needs_llama_cpp
def test_retries_reuse_the_image(gguf_models):
    """A refused attempt is retried on the same image: only the reworded request is new."""
    src = RefusingVLM(gguf_models.qwen_text, gguf_models.qwen_mmproj, refuse=1, **LEAN)
    try:
        rubric = Rubric()
        system, schema = rubric.system_prompt(), rubric.json_schema()
        _, first = evaluated(src, lambda: src.chat(PHOTOS[0], system, rubric.user_prompt(),
                                                   schema=schema, max_tokens=8))
        _, retry = evaluated(src, lambda: src.chat(PHOTOS[0], system,
                                                   rubric.user_prompt(attempt=1),
                                                   schema=schema, max_tokens=8))
        reworded = len(src._llm.tokenize(rubric.user_prompt(attempt=1).encode(),
                                         add_bos=False))
        system_tokens = len(src._llm.tokenize(system.encode(), add_bos=False))
        assert first > system_tokens + 200  # the first attempt decoded a 256-token image
        assert retry <= reworded + 16  # the retry: the reworded request, end-of-turn tokens
    finally:
        src.unload()


@needs_llama_cpp
def test_logprob_evaluates_the_shared_tag_context_once(sources):
    """The tagger's context is the same for every axis: it joins the cached head, so four
    more axes cost only their questions, with the same numbers as one axis at a time."""
    import llama_cpp

    src = sources("llava", "logprob")
    rubric, image = Rubric(), PHOTOS[1]
    system = rubric.system_prompt()
    tagger = ScoreCard(source="wd", kind="tagger", tags={f"tag_{i}": 0.9 - i / 100
                                                         for i in range(30)},
                       extras={"rating": {"explicit": 0.7, "general": 0.1}})
    context = tag_context([tagger])
    prefixes = [f"{context}\n\n{rubric.logprob_prefix(a)}" for a in rubric.axes]
    src.load()
    llm = src._llm

    def counted(ps):
        llama_cpp.llama_perf_context_reset(llm.ctx)
        got = src.level_probs(image, system, ps, LEVELS)
        return got, llama_cpp.llama_perf_context(llm.ctx).n_p_eval

    src.level_probs(image, system, prefixes[:1], LEVELS)  # system prompt now cached
    (first,), one = counted(prefixes[:1])
    shared, five = counted(prefixes)
    assert np.allclose([first[k] for k in LEVELS], [shared[0][k] for k in LEVELS], atol=1e-4)
    _, tail = src._split_prompt(system)
    questions = [len(llm.tokenize((rubric.logprob_prefix(a) + tail).encode(), add_bos=False,
                                  special=True)) for a in rubric.axes]
    assert abs((five - one) - sum(questions[1:])) <= 2
    assert five - one < 4 * len(llm.tokenize(context.encode(), add_bos=False))

    # the base class builds exactly these prefixes from prior cards
    (card,) = src.score([image], ScoreContext(prior=[[tagger]]))[0]
    got = card.extras["level_probs"]["overall"]
    assert np.allclose([got[k] for k in LEVELS], [shared[-1][k] for k in LEVELS], atol=1e-4)


@needs_llama_cpp
def test_forced_generic_mtmd_handler_works_in_both_modes(gguf_models):
    src = LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, chat_format="mtmd",
                      method="logprob", comment=True, **LEAN)
    try:
        (card,) = src.score(PHOTOS[:1])[0]
        assert card.ok, card.abstained
        assert type(src._handler).__name__ == "MTMDChatHandler"
        assert extract_json(card.raw) is not None  # the comment's generation ran too
        assert "mtmd" in src.describe()
    finally:
        src.unload()


@needs_llama_cpp
def test_one_image_too_big_for_the_context_abstains_alone(gguf_models):
    """Qwen2-VL takes images at their resolution: a huge one overflows a small n_ctx."""
    src = LlamaCppVLM(gguf_models.qwen_text, gguf_models.qwen_mmproj, n_ctx=1024,
                      method="logprob", comment=False, **LEAN)
    huge = np.repeat(np.repeat(PHOTOS[0], 2, axis=0), 2, axis=1)  # 1024 x 1024
    try:
        sheet = src.score([PHOTOS[1], huge, PHOTOS[2]])
        assert [c[0].ok for c in sheet] == [True, False, True]
        assert "n_ctx" in sheet[1][0].abstained
    finally:
        src.unload()


@needs_llama_cpp
def test_large_images_are_downscaled_to_max_pixels(gguf_models):
    src = LlamaCppVLM(gguf_models.qwen_text, gguf_models.qwen_mmproj, n_ctx=1024,
                      max_pixels=256 * 256, method="logprob", comment=False, **LEAN)
    huge = np.repeat(np.repeat(PHOTOS[0], 2, axis=0), 2, axis=1)  # 1024 x 1024
    assert src._rgb(huge).shape == (256, 256, 3)
    small = PHOTOS[1][:200, :300]
    assert src._rgb(small).shape == small.shape  # small enough already
    try:
        assert src.score([huge])[0][0].ok  # would overflow n_ctx at full size
    finally:
        src.unload()


# -- refusals through a real model call -----------------------------------------------------
REFUSALS = ["I'm sorry, I can't help with that.",
            "申し訳ありませんが、この画像の評価はできません。"]


class RefusingVLM(LlamaCppVLM):
    """Forces the first `refuse` answers to a refusal with a llama.cpp grammar: the text
    really comes out of the model; only what it may say is constrained."""

    def __init__(self, *a, refuse: int, **kw):
        super().__init__(*a, **kw)
        self.refuse = refuse
        self.prompts: list[str] = []

    def chat(self, image, system, user, *, schema, max_tokens):
        self.prompts.append(user)
        return super().chat(image, system, user, schema=schema, max_tokens=max_tokens)

    def _constraint(self, schema):
        if len(self.prompts) > self.refuse:
            return super()._constraint(schema)
        from llama_cpp.llama_grammar import LlamaGrammar

        text = REFUSALS[(len(self.prompts) - 1) % len(REFUSALS)]
        return {"grammar": LlamaGrammar.from_string(f"root ::= {json.dumps(text)}",
                                                    verbose=False)}


@needs_llama_cpp
def test_refusing_model_is_retried_then_abstains(gguf_models):
    src = RefusingVLM(gguf_models.llava_text, gguf_models.llava_mmproj, refuse=99,
                      method="generate", **LEAN)
    try:
        (card,) = src.score(PHOTOS[:1])[0]
    finally:
        src.unload()
    assert len(src.prompts) == 3
    assert len(set(src.prompts)) == 3  # reworded each time
    assert not card.ok
    assert card.abstained.startswith("refused 3 times")
    assert card.raw == REFUSALS[0]  # the third answer, as the model produced it


@needs_llama_cpp
def test_refusal_then_a_valid_answer_scores(gguf_models):
    src = RefusingVLM(gguf_models.qwen_text, gguf_models.qwen_mmproj, refuse=2,
                      method="generate", **LEAN)
    try:
        (card,) = src.score(PHOTOS[:1])[0]
    finally:
        src.unload()
    assert len(src.prompts) == 3
    assert card.ok, card.abstained
    assert card.extras["attempts"] == 3
    assert set(card.axes) == set(Rubric().axes)


# -- memory ---------------------------------------------------------------------------------
class RecordingPolicy(MemoryPolicy):
    def __init__(self, device: str = "cpu", free: int | None = None):
        self.dev, self.free, self.calls = device, free, []

    def device(self) -> str:
        return self.dev

    def reserve(self, nbytes, device):
        self.calls.append(("reserve", nbytes, device))
        return self.free

    def loaded(self, model, nbytes, device):
        self.calls.append(("loaded", nbytes, device))

    def released(self, model):
        self.calls.append(("released",))


@needs_llama_cpp
def test_unload_releases_model_and_vision_context_and_reloads(gguf_models):
    policy = RecordingPolicy()
    src = LlamaCppVLM(gguf_models.qwen_text, gguf_models.qwen_mmproj, memory=policy,
                      method="logprob", comment=False, **LEAN)
    assert src.score(PHOTOS[:1])[0][0].ok
    llm, handler = src._llm, src._handler
    assert handler.mtmd_ctx is not None and llm._ctx.ctx is not None
    llm_ref, handler_ref = weakref.ref(llm), weakref.ref(handler)
    del llm
    src.unload()
    assert handler.mtmd_ctx is None  # libmtmd's context freed
    del handler
    gc.collect()
    assert llm_ref() is None and handler_ref() is None
    assert not src.loaded
    src.unload()  # idempotent
    # on the CPU nothing is reserved, but the host knows of the model so it can evict it
    cpu = ("loaded", src.memory_bytes(), "cpu")
    assert policy.calls == [cpu, ("released",)]
    assert src.score(PHOTOS[1:2])[0][0].ok  # loads again
    src.unload()
    assert policy.calls == [cpu, ("released",), cpu, ("released",)]


@needs_llama_cpp
def test_gpu_layers_follow_the_build_and_the_policy(gguf_models):
    import llama_cpp

    gpu_build = llama_cpp.llama_supports_gpu_offload()
    policy = RecordingPolicy(device="cuda", free=10**12)
    src = LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, memory=policy)
    assert src._gpu_layers(llama_cpp) == (-1 if gpu_build else 0)
    fixed = LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, n_gpu_layers=1,
                        memory=policy)
    assert fixed._gpu_layers(llama_cpp) == (1 if gpu_build else 0)
    cpu = LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, memory=RecordingPolicy())
    assert cpu._gpu_layers(llama_cpp) == 0
    # what is reserved and registered: weights + mmproj + KV cache, a share when partial
    weights = read_pair(gguf_models.llava_text, gguf_models.llava_mmproj).model_bytes
    assert src._gpu_bytes(-1) == src.memory_bytes() > weights
    assert src._gpu_bytes(0) == 0
    assert 0 < src._gpu_bytes(1) < src._gpu_bytes(2) == src.memory_bytes()


@needs_llama_cpp
def test_a_model_llama_cpp_cannot_load_abstains_instead_of_crashing(gguf_models, tmp_path,
                                                                     caplog):
    """Every load attempt fails (as an out-of-memory GPU load would): after the CPU
    fallback the source abstains with llama.cpp's reason; nothing crashes."""
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(gguf_models.llava_text.read_bytes()[:-4096])  # header intact
    src = LlamaCppVLM(broken, gguf_models.llava_mmproj, **LEAN)
    sheet = src.score(PHOTOS[:2])
    assert [c[0].ok for c in sheet] == [False, False]
    assert "llama.cpp could not load 'truncated.gguf'" in sheet[0][0].abstained
    assert "n_gpu_layers=0 failed" in caplog.text
    assert not src.loaded and src._handler is None


# -- without running llama.cpp ----------------------------------------------------------
def test_describe_never_raises(tmp_path):
    src = LlamaCppVLM(tmp_path / "gone.gguf", tmp_path / "gone-mmproj.gguf")
    assert "gone.gguf" in src.describe()
    (card,) = src.score(IMAGES[:1])[0]
    assert "not found" in card.abstained


def test_bad_options_are_refused_up_front(gguf_models):
    with pytest.raises(SourceError, match="chat_format"):
        LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, chat_format="vicuna")
    with pytest.raises(SourceError, match="n_gpu_layers"):
        LlamaCppVLM(gguf_models.llava_text, gguf_models.llava_mmproj, n_gpu_layers="all")
