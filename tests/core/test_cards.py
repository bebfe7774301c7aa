"""Cards, images and the rubric: the data every source and node shares."""

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from scoring.core.cards import AXES, ScoreCard, Verdict, clamp_score, merge_sheets
from scoring.core.images import BadImage, as_rgb, from_pil, load, to_pil, to_uint8
from scoring.core.rubric import LEVELS, Rubric, level_to_score, tag_context


def test_card_round_trip_through_json():
    card = ScoreCard(source="wd", kind="tagger", provides=("erotic",), axes={"erotic": 61.5},
                     tags={"1girl": 0.98}, extras={"rating": {"explicit": 0.4}})
    back = ScoreCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert back == card
    assert ScoreCard.abstain("qwen", "vlm", "refused").ok is False


def test_verdict_round_trip_and_unscored_has_no_score():
    card = ScoreCard(source="a", kind="vlm", axes={"overall": 70.0})
    v = Verdict(axes={"overall": 70.0}, confidence=0.5, used=["a"], dropped={}, cards=[card])
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    assert v.score == 70.0
    v.unscored = "too few sources"
    assert v.score is None and v.value("overall") is None


@pytest.mark.parametrize(("value", "expected"), [
    (50, 50.0), ("72", 72.0), (-3, 0.0), (250, 100.0), (float("nan"), None),
    (float("inf"), None), (None, None), ("high", None),
])
def test_clamp_score(value, expected):
    assert clamp_score(value) == expected


def test_merge_sheets_concatenates_per_image_and_checks_sizes():
    a = [[ScoreCard(source="a", kind="vlm")], [ScoreCard(source="a", kind="vlm")]]
    b = [[ScoreCard(source="b", kind="judge")], []]
    merged = merge_sheets(a, b)
    assert [[c.source for c in cards] for cards in merged] == [["a", "b"], ["a"]]
    with pytest.raises(ValueError, match="different sizes"):
        merge_sheets(a, b[:1])


@pytest.mark.parametrize(("array", "pixel"), [
    (np.full((2, 3), 128, np.uint8), 128 / 255),                     # grayscale
    (np.full((2, 3, 1), 65535, np.uint16), 1.0),                     # 16-bit, one channel
    (np.dstack([np.zeros((2, 3, 3)), np.zeros((2, 3, 1))]), 1.0),    # transparent → white
    (np.full((2, 3, 3), 0.25, np.float64), 0.25),
])
def test_as_rgb_normalises_layouts(array, pixel):
    img = as_rgb(array)
    assert img.shape == (2, 3, 3) and img.dtype == np.float32
    assert img[0, 0, 0] == pytest.approx(pixel, abs=1e-3)


@pytest.mark.parametrize("shape", [(0, 4, 3), (4, 4, 2), (4,), (2, 2, 2, 3)])
def test_as_rgb_rejects_odd_shapes(shape):
    with pytest.raises(BadImage):
        as_rgb(np.zeros(shape))


def test_nan_frames_survive_until_cleaned():
    img = as_rgb(np.full((4, 4, 3), np.nan, np.float32))
    assert np.isnan(img).all()
    assert (to_uint8(img) == 0).all()
    assert to_pil(img).size == (4, 4)


def test_pil_modes_and_files(tmp_path):
    for mode in ("P", "LA", "CMYK", "I;16", "1"):
        img = from_pil(PILImage.new(mode, (5, 4)))
        assert img.shape == (4, 5, 3)
    path = tmp_path / "a.png"
    PILImage.new("RGB", (3, 2), (255, 0, 0)).save(path)
    assert load(path)[0, 0].tolist() == [1.0, 0.0, 0.0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(BadImage, match=r"bad\.png"):
        load(bad)


def test_rubric_prompts_are_fixed_and_complete():
    r = Rubric.default()
    system = r.system_prompt()
    assert system == Rubric.default().system_prompt()
    for axis in AXES:
        assert f"- {axis}:" in system
    assert "Japanese" in system and "30" in system and "85" in system
    schema = r.json_schema()
    assert schema["required"] == [*AXES, "comment"]
    assert schema["properties"]["overall"]["enum"][-1] == 100
    assert r.user_prompt() != r.user_prompt(attempt=1) != r.user_prompt(attempt=2)
    assert r.logprob_prefix("overall").endswith("Rating:")


def test_rubric_from_toml_and_guidance(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('language = "en"\nguidance = "Penalise extra fingers."\n'
                    '[axes]\noverall = "finish quality"\n', encoding="utf-8")
    r = Rubric.load(path)
    assert r.language == "en" and "English" in r.system_prompt()
    assert "- overall: finish quality" in r.system_prompt()
    assert "Penalise extra fingers." in r.with_guidance("").system_prompt()
    assert "Also: hands." in r.with_guidance("Also: hands.").system_prompt()
    path.write_text('[axes]\nhumour = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="humour"):
        Rubric.load(path)


def test_levels_map_onto_0_100():
    assert LEVELS == tuple("123456789")
    assert level_to_score(1) == 0 and level_to_score(9) == 100 and level_to_score(5) == 50


def test_tag_context_is_words_only():
    cards = [
        ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9, "smile": 0.5},
                  extras={"rating": {"general": 0.1, "explicit": 0.8}}),
        ScoreCard(source="joy", kind="vlm", comment="線が綺麗。"),
        ScoreCard.abstain("qwen", "vlm", "refused"),
    ]
    text = tag_context(cards)
    assert "[wd] rating: explicit (0.80)" in text
    assert "[wd] tags: 1girl, smile" in text
    assert "[joy] comment: 線が綺麗。" in text
    assert "qwen" not in text


def test_known_models_get_the_names_the_default_weights_use():
    from scoring.sources.vlm.base import model_label

    assert model_label("thesby_Qwen2.5-VL-7B-NSFW-Caption-V3-Q4_K_M", gguf=True) == "qwen-gguf"
    assert model_label("llama-joycaption-beta-one-hf-llava-nf4") == "joycaption"
    assert model_label("ToriiGate-v0.4-2B") == "toriigate"
    assert model_label("Qwen2-VL-2B-Instruct") == "Qwen2-VL-2B-Instruct"  # not a GGUF
    assert model_label("my-model") == "my-model"
