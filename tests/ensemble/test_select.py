"""The filter's decision without ComfyUI: thresholds, top K, keep_best, the confidence floor,
the unscored policy — and each decision carries the rule that made it and why."""

from __future__ import annotations

import json

import pytest

from scoring.core.cards import Decision, Verdict
from scoring.ensemble.select import DEFAULT_THRESHOLD, Rule, decide, decided, status


def verdict(score: float | None, conf: float = 0.8, **axes: float) -> Verdict:
    if score is None:
        return Verdict(axes={"overall": None}, confidence=0.0, used=[], dropped={}, cards=[],
                       unscored="judge down: timeout")
    return Verdict(axes={"overall": score, **axes}, confidence=conf, used=["a", "b"],
                   dropped={}, cards=[], confidences={"overall": conf, **dict.fromkeys(axes,
                                                                                     conf)})


BATCH = [verdict(90), verdict(65), verdict(None), verdict(75), verdict(80, conf=0.3)]


def statuses(ds: list[Decision]) -> list[str]:
    return [d.status for d in ds]


def test_threshold_decides_each_image_and_says_why():
    ds = decide(BATCH, Rule(threshold=75))
    assert statuses(ds) == ["passed", "rejected", "unscored", "passed", "passed"]
    assert [d.passed for d in ds] == [True, False, False, True, True]
    assert {d.rule for d in ds} == {"overall ≥ 75"}
    assert ds[1].why == "overall 65 < 75" and ds[0].why == ""
    assert ds[2].why == "judge down: timeout"  # an unscored image says what was missing


def test_the_default_rule_is_the_filters_default():
    assert Rule().threshold == DEFAULT_THRESHOLD == 60.0
    assert statuses(decide(BATCH, Rule())) == ["passed", "passed", "unscored", "passed", "passed"]


def test_top_k_and_ties_by_batch_order():
    ds = decide([verdict(70), verdict(90), verdict(70), verdict(None)], Rule(mode="top_k", top_k=2))
    assert statuses(ds) == ["passed", "passed", "rejected", "unscored"]
    assert ds[2].why == "not in the top 2" and ds[0].rule == "top 2 by overall"
    assert statuses(decide(BATCH, Rule(mode="top_k", top_k=0))).count("passed") == 0


def test_keep_best_lets_the_best_scored_pass_when_nothing_would():
    ds = decide(BATCH, Rule(threshold=99, keep_best=True))
    assert statuses(ds) == ["passed", "rejected", "unscored", "rejected", "rejected"]
    ds = decide([verdict(None)], Rule(threshold=99, keep_best=True))
    assert statuses(ds) == ["unscored"]  # nothing scored: nothing to keep


def test_a_confidence_floor_rejects_what_is_unsure_even_at_the_top():
    ds = decide(BATCH, Rule(threshold=60, min_confidence=0.5))
    assert statuses(ds)[4] == "rejected" and ds[4].why == "confidence 0.30 < 0.5"
    assert ds[0].rule == "overall ≥ 60, confidence ≥ 0.5"
    top = decide(BATCH, Rule(mode="top_k", top_k=1, min_confidence=0.5))
    assert statuses(top) == ["passed", "rejected", "unscored", "rejected", "rejected"]


@pytest.mark.parametrize(("policy", "passes"), [("block", False), ("pass", True)])
def test_unscored_images_follow_the_policy_but_stay_unscored(policy, passes):
    (d,) = decide([verdict(None)], Rule(unscored=policy))
    assert d.status == "unscored" and d.passed is passes


def test_other_axes_and_the_confidence_axis():
    batch = [verdict(90, erotic=20.0), verdict(50, erotic=70.0), verdict(None)]
    assert statuses(decide(batch, Rule(axis="erotic", threshold=60))) == \
        ["rejected", "passed", "unscored"]
    ds = decide(batch, Rule(axis="confidence", threshold=0.5))
    assert statuses(ds) == ["passed", "passed", "unscored"]
    assert ds[0].rule == "confidence ≥ 0.5"


def test_a_rule_is_checked():
    for bad in ({"axis": "beauty"}, {"mode": "best"}, {"unscored": "reject"},
                {"threshold": float("nan")}, {"min_confidence": 2}, {"top_k": -1}):
        with pytest.raises(ValueError):
            Rule(**bad)


def test_decisions_travel_on_verdicts_and_through_json():
    out = decided(BATCH, Rule(threshold=75))
    assert [v.decision.status for v in out] == ["passed", "rejected", "unscored", "passed",
                                                "passed"]
    assert all(v.decision is None for v in BATCH)  # copies: the inputs stay as they were
    back = Verdict.from_dict(json.loads(json.dumps(out[1].to_dict())))
    assert back == out[1] and back.decision == Decision("rejected", False, "overall ≥ 75",
                                                        "overall 65 < 75")
    assert Verdict.from_dict({**out[1].to_dict(), "decision": {"status": "great"}}).decision \
        is None  # a decision that is not one is read as none


def test_status_is_the_filters_decision_else_the_given_rule():
    filtered = decided([verdict(65)], Rule(threshold=60))[0]
    assert status(filtered, Rule(threshold=75)).status == "passed"  # the filter's, kept
    assert status(verdict(65), Rule(threshold=75)).status == "rejected"
    assert status(verdict(65)).status == "passed"  # the default rule
