"""The rubric (`scoring.core.rubric`): the fixed prompts and schema the VLMs and the judge
get, the levels, the tag context, and the rubric as a TOML file (`to_toml` / `from_toml` /
`load`) — its size limit checked through every way in, the CLI's `--rubric` included."""

from __future__ import annotations

import sys

import pytest
from helpers.run_cli import run
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.core.cards import AXES, ScoreCard
from scoring.core.rubric import (
    DEFAULT_AXES,
    LEVELS,
    MAX_RUBRIC_CHARS,
    Rubric,
    level_to_score,
    tag_context,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytest_plugins = ["helpers.photos"]  # `images`: a folder of real photos


TRICKY = 'quotes "like this", a \\ backslash, """triple""", tab\tand\r\nCRLF, \x00\x1f\x7f'


def custom() -> Rubric:
    return Rubric(
        axes={**DEFAULT_AXES, "typeset": "写植：吹き出しと擬音の「読みやすさ」\n50 = 文字なし"},
        anchors=({"description": "a \"weak\" one\nwith two lines", "comment": "弱い。\n改行あり",
                  "scores": {"overall": 22.5, "erotic": 10}},),
        language="en", guidance=f"日本語のガイダンス\n{TRICKY}\n")


def test_the_default_rubric_round_trips_and_reads_like_a_file_to_edit():
    text = Rubric.default().to_toml()
    assert Rubric.from_toml(text) == Rubric.default()
    data = tomllib.loads(text)
    assert set(data) == {"language", "guidance", "axes", "anchors"}
    assert len(data["anchors"]) == 2 and "[axes]" in text and "[[anchors]]" in text
    assert "写植" in text  # UTF-8 as it is, not \u escapes


def test_japanese_quotes_newlines_and_control_characters_round_trip():
    r = custom()
    text = r.to_toml()
    assert Rubric.from_toml(text) == r
    assert tomllib.loads(text)["guidance"] == r.guidance
    assert "日本語のガイダンス\n" in text  # multi-line strings stay readable
    assert Rubric.from_toml(text).system_prompt() == r.system_prompt()


@settings(max_examples=150, deadline=None)
@given(guidance=st.text(), comment=st.text(), meaning=st.text(), language=st.text())
def test_any_text_round_trips(guidance, comment, meaning, language):
    r = Rubric(axes={**DEFAULT_AXES, "appeal": meaning}, language=language, guidance=guidance,
               anchors=({"description": meaning, "scores": {"appeal": 50}, "comment": comment},))
    assert Rubric.from_toml(r.to_toml()) == r


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(custom().to_toml(), encoding="utf-8")
    assert Rubric.load(path) == custom()
    path.write_bytes("guidance = '\u5199'".encode("cp932"))
    with pytest.raises(ValueError, match=r"mine\.toml: not UTF-8"):
        Rubric.load(path)


@pytest.mark.parametrize("text, message", [
    ('language = "ja\n', r"invalid rubric TOML: .*line 1"),
    ("[axes]\nerotic = 'x'\n[axes]\n", r"invalid rubric TOML: .*line 3"),
    ('guidence = "typo"', r"unknown rubric keys \['guidence'\]"),
    ('[axes]\nbeauty = "x"', r"unknown rubric axes \['beauty'\]"),
    ("[axes]\nerotic = 3", r"\[axes\] must map each axis name to its meaning"),
    ("guidance = 3", r"guidance must be a string"),
    ('[[anchors]]\ndescription = "x"', r"anchor 1 lacks scores, comment"),
    ('[[anchors]]\ndescription = "x"\ncomment = "y"\nscores = { looks = 3 }',
     r"anchor 1: scores must map axes"),
])
def test_bad_toml_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        Rubric.from_toml(text)


def test_partial_rubric_keeps_the_defaults():
    r = Rubric.from_toml('language = "en"\n[axes]\nappeal = "cuteness"\n')
    assert r.axes == {**DEFAULT_AXES, "appeal": "cuteness"} and r.anchors == Rubric().anchors


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


def test_a_rubric_has_a_size_limit(tmp_path, images):
    """Issue G.7: a 5.3 MB rubric was sent as is; now every way in is a clear error."""
    big = "長い説明。" * (MAX_RUBRIC_CHARS // 4)
    with pytest.raises(ValueError, match=r"rubric too long: .* at most 10,000"):
        Rubric.default().with_guidance(big)
    with pytest.raises(ValueError, match="rubric TOML too long"):
        Rubric.from_toml(f'guidance = "{big}"')
    fits = Rubric.default().with_guidance("x" * (MAX_RUBRIC_CHARS // 2))
    assert len(fits.system_prompt()) <= MAX_RUBRIC_CHARS
    path = tmp_path / "huge.toml"
    path.write_text(f'guidance = "{"x" * 5_300_000}"\n', encoding="utf-8")  # the 5.3 MB one
    r = run("score", str(images), "--rubric", str(path), "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2 and "huge.toml: rubric file too long" in r.stderr
    assert not (tmp_path / "o").exists()
