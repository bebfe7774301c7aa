"""The filter's two gates after the score: the publish check (publishable passes; needs work
is held back as "needs work"; unchecked never passes) and the character (likeness ≥ 50) —
never failing open; and a verdict judged again after Saiten Mosaic."""

from __future__ import annotations

import dataclasses

from scoring.core.cards import NEEDS_WORK, Decision, ScoreCard, Verdict
from scoring.ensemble.select import Rule, after_fix, decide, decided
from scoring.publish.rules import PUBLISHABLE, UNCHECKED, unchecked


def check(status: str, summary: str = "") -> ScoreCard:
    return ScoreCard("censor", "detector", extras={"publish": {
        "status": status, "summary": summary or status, "regions": [], "needed": 11,
        "rule": {"name": "1/100", "divisor": 100, "minimum": 4, "factor": 1,
                 "min_cover": 0.9}}})


def verdict(score: float, *cards: ScoreCard, likeness: float | None = None) -> Verdict:
    axes = {"overall": score, **({"likeness": likeness} if likeness is not None else {})}
    return Verdict(axes=axes, confidence=0.8, used=["a"], dropped={}, cards=list(cards),
                   confidences={"overall": 0.8})


def test_publish_gate_routes_three_ways():
    vs = [verdict(90, check(PUBLISHABLE)),
          verdict(90, check(NEEDS_WORK, "needs work: R1 (pussy): mosaic too fine (3 px "
                                        "found, 11 px needed)")),
          verdict(40, check(NEEDS_WORK)),                                   # score fails first
          verdict(90, ScoreCard.abstain("censor", "detector", "model missing",
                                        extras={"publish": unchecked("model missing")})),
          verdict(90)]                                                      # no check ran
    ds = decide(vs, Rule(threshold=60, publish=True))
    assert [d.status for d in ds] == ["passed", NEEDS_WORK, "rejected", "rejected", "rejected"]
    assert [d.passed for d in ds] == [True, False, False, False, False]
    assert [d.publish for d in ds] == [PUBLISHABLE, NEEDS_WORK, NEEDS_WORK, UNCHECKED, UNCHECKED]
    assert "3 px found, 11 px needed" in ds[1].why and ds[2].why == "overall 40 < 60"
    assert ds[3].why == "unchecked: model missing"
    assert [d.gate for d in ds] == ["", "publish", "", "publish", "publish"]
    assert ds[0].terms["publish"] is True and Decision.from_dict(ds[1].to_dict()) == ds[1]
    assert ds[4].why == "unchecked: no publish check ran"
    assert ds[0].rule == "overall ≥ 60, publishable"


def test_without_the_gate_the_verdict_is_still_shown():
    ds = decide([verdict(90, check(NEEDS_WORK)), verdict(90)], Rule(threshold=60))
    assert [(d.status, d.passed, d.publish) for d in ds] == [
        ("passed", True, NEEDS_WORK), ("passed", True, "")]
    assert "publish" not in ds[1].to_dict()
    assert Decision.from_dict(ds[0].to_dict()) == ds[0]


def test_character_gate_never_fails_open():
    vs = [verdict(90, likeness=80), verdict(90, likeness=30), verdict(90),
          verdict(90, likeness=50.0)]
    ds = decide(vs, Rule(threshold=60, character=True))
    assert [d.passed for d in ds] == [True, False, False, True]
    assert ds[1].why == "likeness 30 < 50 (another character?)"
    assert ds[2].why == "no likeness (no likeness source ran)"
    gone = dataclasses.replace(vs[2], missing={"likeness": "likeness abstained: no "
                                                            "reference images"})
    assert "no reference images" in decide([gone], Rule(character=True))[0].why


def test_both_gates_and_top_k():
    vs = [verdict(95, check(NEEDS_WORK), likeness=90), verdict(90, check(PUBLISHABLE),
                                                              likeness=20),
          verdict(85, check(PUBLISHABLE), likeness=70), verdict(80, check(PUBLISHABLE),
                                                               likeness=70)]
    ds = decide(vs, Rule(mode="top_k", top_k=3, character=True, publish=True))
    assert [d.status for d in ds] == [NEEDS_WORK, "rejected", "passed", "rejected"]
    assert ds[3].why == "not in the top 3"     # the gates never promote another image


def test_after_fix_passes_what_the_mosaic_made_publishable():
    held = decided([verdict(90, check(NEEDS_WORK))], Rule(publish=True))[0]
    fixed = check(PUBLISHABLE).extras["publish"]
    after = after_fix(held, fixed)
    assert held.decision.gate == "publish"
    assert after.decision == Decision("passed", True, held.decision.rule, "",
                                      publish=PUBLISHABLE)
    assert after.decision.terms == held.decision.terms and after.decision.gate == ""
    assert after.cards[0].extras["publish"] is fixed and held.cards[0].extras["publish"] \
        is not fixed
    still = after_fix(held, {**fixed, "status": NEEDS_WORK, "summary": "needs work: R1"})
    assert still.decision.status == NEEDS_WORK and still.decision.why == "needs work: R1"
    rejected = decided([verdict(10, check(NEEDS_WORK))], Rule(publish=True))[0]
    assert after_fix(rejected, fixed).decision.status == "rejected"   # the score still fails
    assert after_fix(verdict(90), fixed).cards == []                 # no check: unchanged
