"""Answer parsing and refusal detection on a corpus of real-looking model outputs."""

import pytest

from scoring.parse import extract_json, is_refusal, parse_answer, scores_from_json

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
    ('{"erotic": "8/10", "composition": "70/100", "appeal": 75.4, "typeset": 50, '
     '"overall": {"score": 72}}',
     {"erotic": 80.0, "composition": 70.0, "appeal": 75.4, "typeset": 50.0, "overall": 72.0}, ""),
    ('{"erotic": 140, "composition": -5, "appeal": 75, "typeset": 50, "overall": 72}',
     {"erotic": 100.0, "composition": 0.0, "appeal": 75.0, "typeset": 50.0, "overall": 72.0}, ""),
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
    assert "invalid overall: 'n/a'" in parsed.problems
    assert "missing composition" in parsed.problems
    assert scores_from_json(None).problems == ["no JSON object"]
