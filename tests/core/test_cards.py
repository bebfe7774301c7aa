"""Score cards and verdicts (`scoring.core.cards`): the data every source and node shares,
round-tripped through JSON, scores clamped, per-image sheets merged."""

import json

import pytest

from scoring.core.cards import ScoreCard, Verdict, clamp_score, merge_sheets


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
