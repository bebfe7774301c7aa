"""The judge's two-stage selection (`scoring.sources.judge.select`): the prior score an image
has from the sources before the judge, and which images a band or a top-K leaves unjudged —
each with the reason its abstention shows (aggregation treats it as absent, never 0)."""

from __future__ import annotations

import pytest

from scoring.core.cards import CHECK, ScoreCard
from scoring.sources.judge.select import prior_score, skipped


def vote(overall: float, weight: float = 1.0) -> ScoreCard:
    return ScoreCard(source="vlm", kind="vlm", axes={"overall": overall}, weight=weight)


def sheet(*overall: float | None) -> list[list[ScoreCard]]:
    return [[] if o is None else [vote(o)] for o in overall]


def test_the_prior_score_is_the_weighted_mean_overall_less_the_checks_penalties():
    check = ScoreCard(source="technical", kind=CHECK, axes={"overall": 100}, penalty=10)
    gone = ScoreCard.abstain("qwen", "vlm", "refused")
    assert prior_score([vote(60), vote(90, weight=2.0), check, gone]) == pytest.approx(70)
    assert prior_score([vote(5), ScoreCard(source="t", kind=CHECK, penalty=50)]) == 0.0
    assert prior_score([check]) is None and prior_score([gone]) is None
    assert prior_score([]) is None


def test_what_a_band_or_a_top_k_leaves_unjudged_and_why():
    prior = sheet(20, 50, 80, 90, None)  # the last: nothing known, so it is judged
    assert skipped(prior, 5, None, 0) == {}
    assert skipped(prior, 5, (40, 60), 0) == {
        0: "not judged (outside band: prior score 20)",
        2: "not judged (outside band: prior score 80)",
        3: "not judged (outside band: prior score 90)"}
    assert skipped(prior, 5, (40, 60), 1) == {
        0: "not judged (outside band and top-K: prior score 20)",
        2: "not judged (outside band and top-K: prior score 80)"}
    assert skipped(sheet(40, 60, 61), 3, (40, 60), 0) == {
        2: "not judged (outside band: prior score 61)"}  # the band's ends are in it
    assert skipped(prior, 5, None, 2) == {0: "not judged (outside top-K: prior score 20)",
                                          1: "not judged (outside top-K: prior score 50)"}
    assert skipped(prior, 6, None, 1).keys() == {0, 1, 2}  # image 5 has no prior: judged
    assert skipped(sheet(50, 50, 50), 3, None, 1) == {
        1: "not judged (outside top-K: prior score 50)",
        2: "not judged (outside top-K: prior score 50)"}  # ties: the batch's order
