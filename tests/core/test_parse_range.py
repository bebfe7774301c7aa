"""Nothing earned from garbage (issue N.2): a value that is not a plain number within the
rubric's 0–100 makes its axis abstain with why — never clamped into a score — and an answer
with no valid axis yields nothing to vote with, saying why."""

from __future__ import annotations

import json
import math

import pytest

from scoring.core.parse import parse_answer, plain_score, scores_from_json

GOOD = {"erotic": 60, "composition": 55, "appeal": 70, "typeset": 50}


@pytest.mark.parametrize(("value", "why"), [
    (150, "150 is outside 0–100"),
    (99999, "99999 is outside 0–100"),
    (1e300, "1e+300 is outside 0–100"),
    (-5, "-5 is outside 0–100"),
    (100.0001, "100.0001 is outside 0–100"),
    (10 ** 400, "is outside 0–100"),
    (math.nan, "nan is not a finite number"),
    (math.inf, "inf is not a finite number"),
    ("100/0.0001", "'100/0.0001' is not a plain number"),
    ("8/10", "'8/10' is not a plain number"),
    ("85%", "'85%' is not a plain number"),
    ("1e2", "'1e2' is not a plain number"),
    ("150", "'150' is outside 0–100"),
    ("", "'' is not a plain number"),
    (True, "True is not a number"),
    (None, "None is not a number"),
    ([80], "[80] is not a number"),
    ({"score": 150}, "150 is outside 0–100"),
    ({"score": {"score": 80}}, "is not a number"),
])
def test_anything_but_a_plain_number_in_range_is_no_score(value, why):
    got, reason = plain_score(value)
    assert got is None and why in reason


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0.0), (100, 100.0), (72.5, 72.5), ("85", 85.0), (" 64.25 ", 64.25),
    ({"score": 72}, 72.0), ({"value": "40"}, 40.0),
])
def test_plain_numbers_in_range_score(value, expected):
    assert plain_score(value) == (expected, "")


def test_an_out_of_range_axis_abstains_and_the_others_stand():
    parsed = scores_from_json({**GOOD, "overall": 150})
    assert parsed.axes == {k: float(v) for k, v in GOOD.items()}
    assert parsed.invalid == {"overall": "150 is outside 0–100"}
    assert "invalid overall: 150 is outside 0–100" in parsed.problems
    assert parsed.ok  # the valid axes still vote; overall is simply not scored


def test_an_answer_with_no_valid_axis_has_nothing_to_vote_with_and_says_why():
    hostile = {"overall": 150, "erotic": "100/0.0001", "composition": 99999,
               "appeal": 1e300, "typeset": -5, "comment": "great"}
    parsed = parse_answer(json.dumps(hostile))
    assert not parsed.ok and parsed.axes == {}
    why = parsed.why_none()
    assert why.startswith("no valid score: ")
    for axis, text in (("overall", "150 is outside"), ("erotic", "'100/0.0001' is not a "
                       "plain number"), ("appeal", "1e+300 is outside")):
        assert f"{axis} {text}" in why


def test_a_long_value_is_quoted_short():
    parsed = scores_from_json({**GOOD, "overall": "9" * 5000})
    assert len(parsed.invalid["overall"]) < 80
