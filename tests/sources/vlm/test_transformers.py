"""The transformers VLM backend on tiny LLaVA (JoyCaption's architecture), Qwen2-VL
(ToriiGate's) and Qwen2.5-VL models built from config: save → load from a models folder →
score batches."""

from __future__ import annotations

import gc
import json
import sys
import weakref

import numpy as np
import pytest
from helpers.models.tiny_hf import VISION, sample_image

from scoring.core.rubric import LEVELS, Rubric
from scoring.host.memory import MemoryPolicy
from scoring.sources import ScoreContext, SourceError, create

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(params=list(VISION))
def model_dir(request, vlm_folder):
    return vlm_folder / f"tiny-{request.param}"


class Recorder(MemoryPolicy):
    """A memory policy that keeps a log of what the source asked for."""

    def __init__(self):
        self.calls = []

    def reserve(self, nbytes, device):
        self.calls.append(("reserve", nbytes, device))
        return None

    def loaded(self, model, nbytes, device):
        self.calls.append(("loaded", nbytes, device))

    def released(self, model):
        self.calls.append(("released",))


def images(n=3):
    return [sample_image(i, 40 + 8 * i) for i in range(n)]


def test_registry_creates_the_source(model_dir):
    vlm = create("vlm-transformers", model_dir=model_dir)
    assert vlm.name == "vlm-transformers" and vlm.kind == "vlm"
    assert vlm.label == model_dir.name and not vlm.loaded


@pytest.mark.parametrize("method", ["generate", "logprob"])
def test_scores_a_batch_with_one_card_per_image(model_dir, method):
    vlm = create("vlm-transformers", model_dir=model_dir, method=method, max_tokens=48)
    done = []
    sheet = vlm.score(images(), ScoreContext(progress=done.append))
    assert done == [0, 1, 2] and len(sheet) == 3
    rubric = Rubric.default()
    for cards in sheet:
        (card,) = cards
        assert card.ok, card.abstained
        assert card.source == model_dir.name and card.kind == "vlm"
        assert set(card.axes) == set(rubric.axes)
        assert all(0 <= v <= 100 for v in card.axes.values())
        answer = json.loads(card.raw)  # the schema-forced answer is always valid JSON
        assert set(answer) == {*rubric.axes, "comment"}
        assert all(v in range(0, 101, 5) for k, v in answer.items() if k != "comment")
        assert len(answer["comment"]) <= 200
        if method == "logprob":
            assert 0.0 <= card.confidence <= 1.0
            for dist in card.extras["level_probs"].values():
                assert set(dist) == set(LEVELS)
                assert sum(dist.values()) == pytest.approx(1.0)
    vlm.unload()


def test_logprob_reuses_the_image_prefix_exactly(model_dir):
    """Running the shared system+image prefix once and the axis suffixes as one batch on its
    key/value cache gives the same next-token logits as a full forward per prompt."""
    vlm = create("vlm-transformers", model_dir=model_dir)
    vlm.load()
    rubric = Rubric.default()
    texts = [vlm._prompt(rubric.system_prompt(), rubric.logprob_prefix(a)) for a in rubric.axes]
    img = sample_image(5, 64)
    with torch.inference_mode():
        shared = vlm._shared_prefix_logits(img, texts)
        full = vlm._full_logits(img, texts)
    assert shared.shape == full.shape == (len(texts), full.shape[1])
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-4)
    # the prompts differ, so the distributions do too
    assert not torch.allclose(full[0], full[1])
    vlm.unload()


def test_chat_without_schema_generates_text(model_dir):
    vlm = create("vlm-transformers", model_dir=model_dir)
    vlm.load()
    text = vlm.chat(sample_image(1), "system", "Describe the image.", schema=None, max_tokens=8)
    assert isinstance(text, str)
    vlm.unload()


def test_tags_from_prior_cards_reach_the_prompt(vlm_folder):
    from scoring.core.cards import ScoreCard

    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-llava", method="logprob",
                 comment=False)
    prior = [[ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9, "smile": 0.8})]]
    seen = []
    original = vlm.level_probs

    def spy(image, system, prefixes, levels):
        seen.extend(prefixes)
        return original(image, system, prefixes, levels)

    vlm.level_probs = spy
    (cards,) = vlm.score([sample_image(0)], ScoreContext(prior=prior))
    assert cards[0].ok and "1girl" in seen[0]
    vlm.unload()


def test_one_bad_image_abstains_alone(vlm_folder):
    """Qwen2-VL refuses an image with an aspect ratio over 200 (a 1x400 strip): that image
    abstains with the reason, the others are scored."""
    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-qwen2vl", method="logprob",
                 comment=False)
    batch = [sample_image(0), np.full((1, 400, 3), 0.5, np.float32), sample_image(2)]
    sheet = vlm.score(batch)
    assert [c[0].ok for c in sheet] == [True, False, True]
    assert "aspect ratio" in sheet[1][0].abstained
    vlm.unload()


def test_load_goes_through_the_memory_policy_and_unload_releases(model_dir):
    memory = Recorder()
    vlm = create("vlm-transformers", model_dir=model_dir, memory=memory)
    vlm.load()
    ref = weakref.ref(vlm._model)
    nbytes = vlm.memory_bytes()
    assert nbytes > 0
    assert memory.calls == [("reserve", nbytes, "cpu"), ("loaded", nbytes, "cpu")]
    assert "on cpu" in vlm.describe()
    vlm.unload()
    gc.collect()
    assert ref() is None and not vlm.loaded
    assert memory.calls[-1] == ("released",)
    vlm.unload()  # idempotent
    assert memory.calls.count(("released",)) == 1


def test_nf4_on_cpu(model_dir):
    bnb = pytest.importorskip("bitsandbytes", reason="nf4 needs bitsandbytes")
    pytest.importorskip("accelerate", reason="nf4 needs accelerate")
    vlm = create("vlm-transformers", model_dir=model_dir, quantization="nf4", method="logprob",
                 max_tokens=24)
    sheet = vlm.score(images(2))
    assert all(c[0].ok for c in sheet), [c[0].abstained for c in sheet]
    quantized = [m for m in vlm._model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized, "no layer was quantized"
    assert "nf4" in vlm.describe()
    ref = weakref.ref(vlm._model)
    vlm.unload()
    gc.collect()
    assert ref() is None


def test_nf4_estimate_is_smaller_than_full_precision(model_dir):
    full = create("vlm-transformers", model_dir=model_dir, dtype="fp32").memory_bytes()
    small = create("vlm-transformers", model_dir=model_dir, quantization="nf4").memory_bytes()
    assert 0 < small < full


def test_missing_or_broken_model_folder_abstains_with_a_clear_reason(tmp_path, vlm_folder):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    empty = tmp_path / "empty"
    empty.mkdir()
    gguf = tmp_path / "model-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    cases = {
        tmp_path / "nowhere": "model folder not found",
        empty: "no config.json",
        broken: "cannot read config.json",
        gguf: "choose the llama.cpp runtime",
    }
    for path, words in cases.items():
        vlm = create("vlm-transformers", model_dir=path)
        with pytest.raises(SourceError, match=words):
            vlm.load()
        sheet = vlm.score([sample_image(0), sample_image(1)])
        assert [c[0].ok for c in sheet] == [False, False]
        assert words in sheet[0][0].abstained
        assert vlm.memory_bytes() == 0


def test_weights_missing_gives_a_clear_error(tmp_path, vlm_folder):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(vlm_folder / "tiny-llava", partial)
    (partial / "model.safetensors").unlink()
    vlm = create("vlm-transformers", model_dir=partial)
    with pytest.raises(SourceError, match="cannot load"):
        vlm.load()


def test_bad_options_are_refused_up_front(vlm_folder):
    with pytest.raises(SourceError, match="dtype"):
        create("vlm-transformers", model_dir=vlm_folder / "tiny-llava", dtype="int3")
    with pytest.raises(SourceError, match="quantization"):
        create("vlm-transformers", model_dir=vlm_folder / "tiny-llava", quantization="gptq")


STRING_ONLY_TEMPLATE = (  # Llama 3.1 style: contents must be strings, no image placeholder
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def test_prompt_has_one_bos_and_every_image_token(vlm_folder):
    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-llava")
    vlm.load()
    tok = vlm._processor.tokenizer
    ids = vlm._encode(sample_image(0), [vlm._prompt("sys", "hello")])["input_ids"][0].tolist()
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    image_id = vlm._model.config.image_token_index
    assert ids.count(image_id) == vlm._model.config.image_seq_length
    vlm.unload()


def test_string_only_chat_template_still_gets_the_image(tmp_path, vlm_folder):
    """JoyCaption's template takes string contents: the image placeholder is put before the
    user's text, and scoring works."""
    import shutil

    folder = tmp_path / "string-template"
    shutil.copytree(vlm_folder / "tiny-llava", folder)
    (folder / "chat_template.jinja").write_text(STRING_ONLY_TEMPLATE)
    vlm = create("vlm-transformers", model_dir=folder, method="logprob", comment=False)
    vlm.load()
    text = vlm._prompt("the rubric", "Rate it.")
    assert "<image>\nRate it." in text and "{'type'" not in text
    (cards,) = vlm.score([sample_image(3)])
    assert cards[0].ok, cards[0].abstained
    vlm.unload()


def test_nf4_without_bitsandbytes_says_what_to_install(monkeypatch, vlm_folder):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if it were not installed
    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-llava", quantization="nf4")
    with pytest.raises(SourceError, match="pip install bitsandbytes accelerate"):
        vlm.load()
    (cards,) = vlm.score([sample_image(0)])
    assert "pip install bitsandbytes" in cards[0].abstained


@pytest.mark.parametrize(("option", "dtype"), [("auto", "float32"), ("bf16", "bfloat16")])
def test_dtype_option(vlm_folder, option, dtype):
    vlm = create("vlm-transformers", model_dir=vlm_folder / "tiny-llava", dtype=option,
                 method="logprob", comment=False)
    (cards,) = vlm.score([sample_image(0)])
    assert cards[0].ok, cards[0].abstained
    assert next(vlm._model.parameters()).dtype == getattr(torch, dtype)  # auto on CPU: fp32
    vlm.unload()
