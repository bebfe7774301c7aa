"""Answer parsing and refusal detection on a corpus of real-looking model outputs."""

import pytest

from scoring.core.parse import extract_json, is_refusal, parse_answer, scores_from_json

FULL = {"erotic": 80.0, "composition": 70.0, "appeal": 75.0, "typeset": 50.0, "overall": 72.0}

SCORED = [
    # (answer, expected axes, expected comment)
    ('{"erotic": 80, "composition": 70, "appeal": 75, "typeset": 50, "overall": 72, '
     '"comment": "構図が安定している。"}', FULL, "構図が安定している。"),
    ('```json\n{"erotic": 80, "composition": 70, "appeal": 75, "typeset": 50, "overall": 72,'
     ' "comment": "good"}\n```\nLet me know if you need more.', FULL, "good"),
    ('Here is my evaluation:\n{"erotic": "80", "composition": "70", "appeal": "75", '
     '"typeset": "50", "overall": "72", "comment": "ok"} Hope this helps!', FULL, "ok"),
    ('{"Erotic": 80, "COMPOSITION": 70, "appeal": 75, "typeset": 50, "overall": 72,}',
     FULL, ""),
    ('{"scores": {"erotic": 80, "composition": 70, "appeal": 75, "typeset": 50, '
     '"overall": 72}, "comment": "nested"}', FULL, "nested"),
    # a fraction or an out-of-range value is no score for its axis (never clamped): the
    # other axes stand (tests/core/test_parse_range.py has every case)
    ('{"erotic": "8/10", "composition": "70/100", "appeal": 75.4, "typeset": 50, '
     '"overall": {"score": 72}}',
     {"appeal": 75.4, "typeset": 50.0, "overall": 72.0}, ""),
    ('{"erotic": 140, "composition": -5, "appeal": 75, "typeset": 50, "overall": 72}',
     {"appeal": 75.0, "typeset": 50.0, "overall": 72.0}, ""),
    # a raw newline inside a string (llama.cpp can emit control characters)
    ('{"erotic": 80, "composition": 70, "appeal": 75, "typeset": 50, "overall": 72, '
     '"comment": "line one\nline two"}', FULL, "line one\nline two"),
]


@pytest.mark.parametrize(("answer", "axes", "comment"), SCORED)
def test_scored_answers(answer, axes, comment):
    parsed = parse_answer(answer)
    assert parsed.ok
    assert parsed.axes == pytest.approx(axes)
    assert parsed.comment == comment
    assert not is_refusal(answer)


def test_truncated_answer_keeps_what_arrived():
    parsed = parse_answer('{"erotic": 80, "composition": 70, "appeal": 7')
    assert parsed.axes == {"erotic": 80.0, "composition": 70.0, "appeal": 7.0}
    assert "missing overall" in parsed.problems


def test_truncated_inside_a_string():
    parsed = parse_answer('{"overall": 64, "comment": "塗りは丁寧だが手が')
    assert parsed.axes == {"overall": 64.0}
    assert parsed.comment == "塗りは丁寧だが手が"


@pytest.mark.parametrize("answer", [
    "", "   ", "The image shows a character on a beach.", "{not json at all",
    '{"erotic": "high", "overall": null, "composition": true}', "[1, 2, 3]",
    '{"erotic": NaN}', '{"overall": "Infinity"}',
])
def test_junk_yields_no_scores(answer):
    parsed = parse_answer(answer)
    assert not parsed.ok
    assert parsed.problems


REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I’m sorry, but I can’t assist with evaluating this image.",  # curly apostrophes
    "I cannot provide ratings for sexually explicit content.",
    "As an AI language model, I am unable to evaluate this image.",
    "Sorry, but this content goes against my guidelines.",
    "申し訳ありませんが、この画像の評価はできません。",
    "この内容にはお答えできません。",
    "性的な画像の採点は控えさせていただきます。",
]


@pytest.mark.parametrize("answer", REFUSALS)
def test_refusals(answer):
    assert is_refusal(answer)
    assert not parse_answer(answer).ok


def test_apology_with_scores_is_not_a_refusal():
    answer = ('Sorry for the delay! {"erotic": 60, "composition": 55, "appeal": 58, '
              '"typeset": 50, "overall": 57, "comment": "普通"}')
    assert not is_refusal(answer)
    assert parse_answer(answer).ok


def test_first_object_wins_and_braces_in_strings_are_respected():
    text = 'x {"comment": "a } brace", "overall": 40} y {"overall": 90}'
    assert extract_json(text) == {"comment": "a } brace", "overall": 40}


def test_validation_reports_each_problem():
    parsed = scores_from_json({"overall": "n/a", "erotic": 50})
    assert parsed.axes == {"erotic": 50.0}
    assert "invalid overall: 'n/a' is not a plain number" in parsed.problems
    assert "missing composition" in parsed.problems
    assert scores_from_json(None).problems == ["no JSON object"]


ZEROS = '"erotic": 0, "composition": 0, "appeal": 0, "typeset": 0, "overall": 0'

REFUSALS_WITH_SCORES = [
    # what a grammar / response_format / constrained decoder makes a censored model write
    ('{' + ZEROS + ', "comment": "I\'m sorry, I can\'t rate explicit content."}', "I can't rate"),
    ('{"erotic": 50, "composition": 50, "appeal": 50, "typeset": 50, "overall": 50, '
     '"comment": "I cannot evaluate sexually explicit images."}', "I cannot evaluate"),
    ('{' + ZEROS + ', "comment": "申し訳ありませんが、この画像の評価はできません。"}',
     "申し訳ありませんが"),
    ('{' + ZEROS + ', "comment": "この画像は採点できません。"}', "採点できません"),
    ('{' + ZEROS + ', "comment": "\\u8a55\\u4fa1\\u3067\\u304d\\u307e\\u305b\\u3093"}',
     "評価できません"),  # a server that escapes non-ASCII
    ('{' + ZEROS + ', "comment": "Unable to see anything to score."}', "Unable to"),
    ('{"erotic": 40, "composition": 40, "appeal": 40, "typeset": 40, "overall": 40, '
     '"comment": "できません"}', "できません"),
    # prose around the JSON
    ('I\'m sorry, but I can\'t help with rating this image.\n{"overall": 0}', "I'm sorry, but"),
    ('As an AI, I do not rate adult content. {"erotic": 70, "composition": 60, "appeal": 65, '
     '"typeset": 50, "overall": 66, "comment": ""}', "As an AI"),
    ('```json\n{"overall": 0, "comment": ""}\n```\nI am unable to evaluate this.',
     "I am unable to evaluate"),
    ('{"overall": 0}\nThis request goes against my guidelines.', "against my guidelines"),
]


@pytest.mark.parametrize(("answer", "wording"), REFUSALS_WITH_SCORES)
def test_refusals_that_arrive_as_json_are_no_vote(answer, wording):
    parsed = parse_answer(answer)
    assert parsed.axes  # the numbers parsed ...
    assert not parsed.ok  # ... but they are no vote
    assert parsed.refusal.lower() == wording.lower()
    assert any(p.startswith("refusal:") for p in parsed.problems)
    assert is_refusal(answer)


GENUINE_LOW = [
    # low or zero scores with a critical comment: scored, never a refusal
    '{"erotic": 10, "composition": 5, "appeal": 10, "typeset": 0, "overall": 5, '
    '"comment": "手の崩れが目立つ。"}',
    '{' + ZEROS + ', "comment": "手の崩れが目立ち、構図も破綻している。"}',
    '{"erotic": 0, "composition": 40, "appeal": 30, "typeset": 50, "overall": 30, '
    '"comment": "Clean line art, but not erotic at all."}',
    '{"erotic": 30, "composition": 25, "appeal": 20, "typeset": 50, "overall": 25, '
    '"comment": "背景は申し訳程度で、手の形が判別できない。"}',
    '{"erotic": 30, "composition": 40, "appeal": 30, "typeset": 50, "overall": 35, '
    '"comment": "I can\'t rate it higher: the hands are broken."}',
    '{"erotic": 70, "composition": 80, "appeal": 80, "typeset": 50, "overall": 80, '
    '"comment": "I can\'t help but admire the lighting."}',
    '{"erotic": 20, "composition": 20, "appeal": 20, "typeset": 20, "overall": 20, '
    '"comment": "Muddy colours and a broken perspective."}',
    'Sure. {"erotic": 15, "composition": 10, "appeal": 10, "typeset": 50, "overall": 10, '
    '"comment": "The anatomy cannot be fixed by the lighting."}',
]


@pytest.mark.parametrize("answer", GENUINE_LOW)
def test_a_genuine_low_score_is_never_a_refusal(answer):
    parsed = parse_answer(answer)
    assert parsed.ok and parsed.refusal == ""
    assert not is_refusal(answer)
