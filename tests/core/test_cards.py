"""Score cards and verdicts (`scoring.core.cards`): the data every source and node shares,
round-tripped through JSON, scores clamped, per-image sheets merged."""

import json

import pytest

from scoring.core.cards import ScoreCard, Verdict, merge_sheets, score_value


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
    (50, 50.0), (0, 0.0), (100, 100.0), (72.5, 72.5), ("72", None), (-3, None), (250, None),
    (100.01, None), (10 ** 400, None), (float("nan"), None), (float("inf"), None),
    (None, None), ("high", None), (True, None),
])
def test_a_card_value_votes_only_as_a_number_in_range_never_clamped(value, expected):
    assert score_value(value) == expected


def test_merge_sheets_concatenates_per_image_and_checks_sizes():
    a = [[ScoreCard(source="a", kind="vlm")], [ScoreCard(source="a", kind="vlm")]]
    b = [[ScoreCard(source="b", kind="judge")], []]
    merged = merge_sheets(a, b)
    assert [[c.source for c in cards] for cards in merged] == [["a", "b"], ["a"]]
    with pytest.raises(ValueError, match="different sizes"):
        merge_sheets(a, b[:1])
