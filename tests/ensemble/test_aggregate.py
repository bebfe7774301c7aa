"""The ensemble (SPEC "Aggregation", `scoring.ensemble.aggregate`): hand-computed cases and
properties, and confidence telling the truth (issue K) on the real CLI with a logprob VLM
served by the fault server on 127.0.0.1: the VLM's own confidence enters the verdict's, and a
single source never yields 1.00."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest
import skimage.data
from helpers.run_cli import run
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from scoring.core.cards import AXES, ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine, combine_sheet, parse_weights

pytest_plugins = ["helpers.fixtures_http"]


def vote(source: str, weight: float = 1.0, repeat: int = 0, comment: str = "",
         provides: tuple[str, ...] | None = None, **axes: float) -> ScoreCard:
    """A vote card; it provides the axes it scores unless `provides` says otherwise."""
    return ScoreCard(source=source, kind="vlm", provides=tuple(axes) if provides is None
                     else provides, axes=axes, weight=weight, repeat=repeat, comment=comment)


def gone(source: str, reason: str, provides: tuple[str, ...] = AXES) -> ScoreCard:
    return ScoreCard.abstain(source, "vlm", reason, provides=provides)


def check(penalty: float, *reasons: str) -> ScoreCard:
    return ScoreCard(source="technical", kind="check", provides=("overall",), penalty=penalty,
                     reasons=list(reasons))


# -- hand-computed cases --------------------------------------------------------------

def test_outlier_is_dropped_and_reported():
    # median 70, |v-m| = 0, 2, 58 → MAD 2 → keep |v-m| ≤ 5 → mean(70, 72) = 71
    v = combine([vote("a", composition=70), vote("b", composition=72),
                 vote("c", composition=12)])
    assert v.axes["composition"] == pytest.approx(71.0)
    assert v.used == ["a", "b"]
    assert v.dropped == {"c": "outlier on composition (12 vs median 70)"}
    # confidence: (1 - 2/40) · kept 2 / expected 3
    assert v.confidence == pytest.approx(0.95 * 2 / 3)
    assert v.scored and v.score is None  # nobody scored overall and there is no check


def test_weights_from_cards_and_settings():
    cards = [vote("a", weight=1.0, overall=60), vote("b", weight=3.0, overall=80)]
    assert combine(cards).score == pytest.approx((60 + 3 * 80) / 4)
    s = AggregateSettings(weights={"b": 1.0})
    assert combine(cards, s).score == pytest.approx(70.0)
    zero = AggregateSettings(weights={"a": 0.0, "b": 0.0})
    assert combine(cards, zero).score == pytest.approx(70.0)  # all-zero weights: plain mean


def test_mad_floor():
    cards = [vote(s, overall=70) for s in "abc"] + [vote("d", overall=73)]
    # MAD = 0 → floored to 1 → keep |v-70| ≤ 2.5: d (73) is dropped
    v = combine(cards)
    assert v.score == pytest.approx(70.0)
    assert "d" in v.dropped and v.confidence == pytest.approx(1.0 * 3 / 4)
    # floor 2 → keep ≤ 5: d stays, plain mean of 70, 70, 70, 73
    v2 = combine(cards, AggregateSettings(mad_floor=2.0))
    assert v2.score == pytest.approx(70.75) and v2.dropped == {}


def test_k_controls_what_is_an_outlier():
    cards = [vote("a", overall=70), vote("b", overall=72), vote("c", overall=76)]
    # m = 72, MAD = 2; c is 4 away: kept at k=2.5 (≤5), dropped at k=1.5 (>3)
    assert combine(cards).score == pytest.approx(218 / 3)
    assert combine(cards, AggregateSettings(k=1.5)).score == pytest.approx(71.0)


def test_one_source_left_is_unscored():
    v = combine([vote("nudenet", erotic=40), gone("technical", "cannot read pixels")])
    assert not v.scored and v.score is None
    assert v.unscored == ("1 of 2 required sources scored (nudenet); "
                          "technical abstained: cannot read pixels")
    assert all(x is None for x in v.axes.values()) and v.confidence == 0.0
    assert v.dropped == {"technical": "cannot read pixels"}
    assert len(v.cards) == 2
    assert combine([vote("nudenet", erotic=40)], AggregateSettings(min_sources=1)).scored


def test_all_abstain_and_no_cards():
    v = combine([gone("a", "refused"), gone("b", "timeout")])
    assert v.unscored == ("0 of 2 required sources scored; "
                          "a abstained: refused; b abstained: timeout")
    assert v.value("overall") is None
    assert combine([]).unscored == "no source scored this image"


def test_abstention_is_absent_not_zero():
    cards = [vote("a", overall=80), vote("b", overall=70), gone("c", "refused", ("overall",))]
    v = combine(cards)
    assert v.score == pytest.approx(75.0)
    assert v.dropped == {"c": "refused"}
    # expected 3 sources provide overall, 2 kept: (1 - 10/40) · 2/3
    assert v.confidence == pytest.approx(0.75 * 2 / 3)


def test_repeats_take_the_median_of_per_repeat_finals():
    vlm = [vote("vlm", repeat=r, overall=x) for r, x in enumerate((60, 80, 70))]
    tagger = vote("wd", overall=70)  # deterministic: one repeat-0 card reused for every repeat
    # per repeat: (60+70)/2=65, (80+70)/2=75, (70+70)/2=70 → median 70
    v = combine([*vlm, tagger])
    assert v.score == pytest.approx(70.0)
    assert v.used == ["vlm", "wd"]


def test_repeat_abstention_is_reported_with_its_repeat():
    cards = [vote("vlm", overall=60), ScoreCard.abstain("vlm", "vlm", "refused", repeat=1),
             vote("wd", overall=70)]
    v = combine(cards)
    # repeat 0: 65; repeat 1: only wd → 70; median of (65, 70) = 67.5
    assert v.score == pytest.approx(67.5)
    assert v.dropped == {"vlm": "abstained in repeat 1: refused"}


def test_check_penalty_on_overall():
    v = combine([vote("a", overall=80, erotic=50), vote("b", overall=70, erotic=60),
                 check(20, "blurry")])
    assert v.score == pytest.approx(55.0)  # 75 − 20
    assert v.axes["erotic"] == pytest.approx(55.0)  # only overall takes the penalty
    assert "technical" in v.used


def test_check_alone_gives_overall_from_penalty():
    v = combine([ScoreCard(source="nudenet", kind="detector", provides=("erotic",),
                           axes={"erotic": 40.0}), check(35, "blurry", "low contrast")])
    assert v.score == pytest.approx(65.0)
    assert v.axes["erotic"] == pytest.approx(40.0)
    assert v.used == ["nudenet", "technical"]
    # one voice per axis: nobody confirmed it, so agreement counts 0.5 (never 1.00, issue K)
    assert v.confidences == {"erotic": 0.5, "overall": 0.5} and v.confidence == 0.5
    broken = combine([vote("nudenet", erotic=10), check(100, "NaN/inf pixels")])
    assert broken.score == 0.0
    clamped = combine([vote("a", overall=10), check(60, "x")])
    assert clamped.score == 0.0


def test_comment_from_highest_weight_ok_vote():
    cards = [vote("a", weight=0.8, comment="弱い", overall=50),
             vote("b", weight=1.1, comment="  構図が良い。 ", overall=60),
             vote("c", weight=2.0, comment="", overall=55)]
    assert combine(cards).comment == "構図が良い。"


def test_check_axes_never_vote():
    c = check(0)
    c.axes = {"overall": 0.0}
    assert combine([vote("a", overall=80), c]).score == pytest.approx(80.0)


def test_non_finite_and_out_of_range_values_are_no_vote_never_clamped():
    v = combine([vote("a", overall=float("nan"), erotic=150), vote("b", overall=60, erotic=-5)],
                AggregateSettings(min_sources=1))
    assert v.score == pytest.approx(60.0)  # a's NaN is no vote
    assert v.axes["erotic"] is None  # 150 and -5 are no votes: not 100 and 0
    assert "a gave erotic 150, not a score in 0–100" in v.missing["erotic"]
    judged = vote("j", provides=AXES, overall=70)
    judged.extras["invalid"] = {"erotic": "'100/0.0001' is not a plain number"}
    v = combine([judged, vote("b", overall=60)])
    assert "j gave no valid erotic ('100/0.0001' is not a plain number)" in v.missing["erotic"]


def test_a_broken_frame_is_unscored_with_its_reason_whatever_scored_it():
    check = ScoreCard(source="technical", kind="check", provides=("overall",), penalty=80.0,
                      reasons=["partially decoded: the bottom 40% is one flat colour"],
                      extras={"broken": "partially decoded: the bottom 40% is one flat colour"})
    v = combine([vote("a", overall=95), vote("b", overall=90), check])
    assert not v.scored and v.score is None and v.confidence == 0.0
    assert v.unscored == "technical: partially decoded: the bottom 40% is one flat colour"
    assert not combine([vote("a", overall=95), check]).scored  # too few sources: still why


def test_sources_that_answer_without_axes_are_unscored():
    v = combine([vote("a"), vote("b")])
    assert not v.scored and "0 of 2 required sources scored" in v.unscored
    v = combine([vote("a", provides=("overall",)), vote("b", provides=("overall",))])
    assert not v.scored and "scored no axis" in v.unscored


def test_a_card_that_votes_on_nothing_never_makes_up_min_sources():
    """The publish check's card (no axis, a verdict in its extras) is not a second source."""
    censor = ScoreCard("censor", "detector", extras={"publish": {"status": "publishable"}})
    v = combine([vote("a", overall=80), censor])
    assert not v.scored and "1 of 2 required sources scored (a)" in v.unscored
    v = combine([vote("a", overall=80), vote("b", overall=60), censor])
    assert v.score == 70.0 and "censor" not in v.used and censor in v.cards


def test_likeness_is_combined_beside_the_score_never_in_it():
    a = vote("a", overall=80)
    like = [ScoreCard("likeness", "detector", ("likeness",), {"likeness": 90.0}),
            ScoreCard("likeness2", "detector", ("likeness",), {"likeness": 70.0})]
    v = combine([a, vote("b", overall=60), *like])
    assert v.score == 70.0 and v.value("likeness") == 80.0
    without = combine([a, vote("b", overall=60)])
    assert v.confidence == without.confidence and "likeness" not in without.axes
    gone_like = ScoreCard.abstain("likeness", "detector", "no references",
                                  provides=("likeness",))
    v = combine([a, vote("b", overall=60), gone_like])
    assert v.value("likeness") is None and "no references" in v.missing["likeness"]
    assert v.score == 70.0 and v.confidence == without.confidence


def test_combine_sheet_aligns_with_batch():
    sheet = [[vote("a", overall=80), vote("b", overall=60)], [vote("a", overall=10)]]
    verdicts = combine_sheet(sheet)
    assert [v.score for v in verdicts] == [70.0, None]


def test_parse_weights():
    assert parse_weights("wd=0.8, grok=1.1") == {"wd": 0.8, "grok": 1.1}
    assert parse_weights("wd: 0.5;\n qwen-gguf = 1\n") == {"wd": 0.5, "qwen-gguf": 1.0}
    assert parse_weights("  ") == {}
    for junk in ("wd", "wd=abc", "=1", "wd=-1", "wd=nan", "wd=1 2"):
        with pytest.raises(ValueError, match="source=number"):
            parse_weights(junk)


# -- properties -----------------------------------------------------------------------

score = st.floats(0, 100, allow_nan=False)
sources = st.lists(st.sampled_from(list("abcdefg")), min_size=1, max_size=6, unique=True)


@st.composite
def card_lists(draw) -> list[ScoreCard]:
    cards = []
    for name in draw(sources):
        if draw(st.booleans()) and draw(st.booleans()):
            cards.append(gone(name, "refused"))
            continue
        axes = draw(st.dictionaries(st.sampled_from(AXES), score, max_size=5))
        cards.append(vote(name, weight=draw(st.floats(0.1, 3)), **axes))
    if draw(st.booleans()):
        cards.append(check(draw(st.floats(0, 100))))
    return cards


def summary(v):
    return v.to_dict(with_cards=False)


@settings(max_examples=150, deadline=None)
@given(card_lists(), st.randoms())
def test_permutation_invariance(cards, rnd):
    shuffled = list(cards)
    rnd.shuffle(shuffled)
    a, b = summary(combine(cards)), summary(combine(shuffled))
    assert a.keys() == b.keys()
    for key in a:
        if key == "axes":
            for axis in a["axes"]:
                assert (a["axes"][axis] is None) == (b["axes"][axis] is None)
                if a["axes"][axis] is not None:
                    assert a["axes"][axis] == pytest.approx(b["axes"][axis])
        elif key in ("score", "confidence") and a[key] is not None:
            assert a[key] == pytest.approx(b[key])
        else:
            assert a[key] == b[key]


@settings(max_examples=150, deadline=None)
@given(card_lists(), st.integers(1, 3), st.floats(0.5, 5))
def test_bounds(cards, min_sources, k):
    v = combine(cards, AggregateSettings(min_sources=min_sources, k=k))
    assert 0.0 <= v.confidence <= 1.0
    for x in v.axes.values():
        assert x is None or 0.0 <= x <= 100.0
    if not v.scored:  # no score; other axes keep what their own voters said
        assert v.score is None and v.confidence == 0.0
        assert v.axes["overall"] is None
    if len({c.source for c in cards if c.ok}) < min_sources:
        assert all(x is None for x in v.axes.values())


@settings(max_examples=150, deadline=None)
@given(card_lists())
def test_final_lies_within_the_kept_values(cards):
    v = combine([c for c in cards if c.kind != "check"], AggregateSettings(min_sources=1))
    for axis, final in v.axes.items():
        if final is None:
            continue
        kept = [c.axes[axis] for c in cards if c.ok and c.kind != "check" and axis in c.axes
                and f"outlier on {axis} " not in v.dropped.get(c.source, "")]
        assert kept
        assert min(kept) - 1e-9 <= final <= max(kept) + 1e-9


@settings(max_examples=150, deadline=None)
@given(st.floats(20, 80), st.lists(st.floats(-5, 5), min_size=3, max_size=6),
       st.floats(25, 60), st.floats(0, 40), st.booleans(), st.sampled_from([1.5, 2.5, 3.5]))
def test_bounded_influence_of_a_dropped_outlier(centre, offsets, gap, further, up, k):
    s = AggregateSettings(k=k)
    sign = 1 if up else -1
    wild, farther = centre + sign * gap, centre + sign * (gap + further)
    assume(0 <= wild <= 100 and 0 <= farther <= 100)
    base = [vote(f"s{i}", composition=centre + o) for i, o in enumerate(offsets)]
    v = combine([*base, vote("wild", composition=wild)], s)
    assume("wild" in v.dropped)
    v2 = combine([*base, vote("wild", composition=farther)], s)
    assert "wild" in v2.dropped and v2.used == v.used
    assert v2.axes["composition"] == pytest.approx(v.axes["composition"])
    assert v2.confidence == pytest.approx(v.confidence)


def test_a_single_wild_source_never_moves_the_result_past_the_others():
    # Others agreeing within 20 points, a wild source > 60 from their centre: the median stays
    # inside the others' range, MAD ≤ 20, so k·MAD ≤ 50 < the wild deviation → dropped.
    # (With others spread widely a wild value can be within k·MAD and be kept: that is MAD's
    # definition, and `test_final_lies_within_the_kept_values` covers it.)
    rnd = random.Random(7)
    for _ in range(300):
        centre = rnd.uniform(10, 90)
        others = [centre + rnd.uniform(-10, 10) for _ in range(rnd.randint(3, 6))]
        wild = 0.0 if centre > 60 else 100.0 if centre < 40 else rnd.choice([0.0, 100.0])
        if abs(wild - centre) <= 60:
            continue
        cards = [vote(f"s{i}", overall=min(100, max(0, x))) for i, x in enumerate(others)]
        v = combine([*cards, vote("wild", weight=5.0, overall=wild)])
        assert "wild" in v.dropped and "wild" not in v.used
        kept = [c.axes["overall"] for c in cards]
        assert min(kept) - 1e-9 <= v.score <= max(kept) + 1e-9


def test_settings_are_validated():
    for bad in ({"k": 0}, {"min_sources": 0}, {"spread_scale": 0}, {"mad_floor": -1}):
        with pytest.raises(ValueError, match="aggregate settings"):
            AggregateSettings(**bad)


@settings(max_examples=100, deadline=None)
@given(card_lists(), st.integers(2, 4))
def test_identical_repeats_change_nothing(cards, n):
    repeated = [replace(c, repeat=r) for c in cards if c.kind != "check" for r in range(n)]
    repeated += [c for c in cards if c.kind == "check"]
    a, b = combine(cards), combine(repeated)
    assert a.unscored == b.unscored and a.used == b.used
    assert set(a.dropped) == set(b.dropped)
    for axis, x in a.axes.items():
        assert (x is None and b.axes[axis] is None) or b.axes[axis] == pytest.approx(x)
    assert b.confidence == pytest.approx(a.confidence)


# -- never fail open (issue G.1) -----------------------------------------------------

def nudenet(erotic: float = 40.0) -> ScoreCard:
    return ScoreCard(source="nudenet", kind="detector", provides=("erotic",),
                     axes={"erotic": erotic})


def judge(**axes: float) -> ScoreCard:
    return ScoreCard(source="grok", kind="judge", provides=AXES, axes=axes)


def test_the_judge_down_leaves_overall_unscored_never_100_minus_penalty():
    down = ScoreCard.abstain("grok", "judge", "HTTP 500: upstream down", provides=AXES)
    v = combine([nudenet(), check(0), down])
    assert not v.scored and v.score is None and v.axes["overall"] is None
    assert v.value("erotic") == 40.0  # NudeNet's own axis keeps its value
    assert v.missing["overall"] == "grok abstained: HTTP 500: upstream down"
    assert v.unscored == ("no source scored overall (expected: grok) — "
                          "grok abstained: HTTP 500: upstream down")
    assert v.confidence == 0.0 and v.dropped == {"grok": "HTTP 500: upstream down"}
    up = combine([nudenet(), check(0), judge(overall=65, erotic=50)])
    assert up.score == 65.0


def test_an_answer_without_the_axis_counts_as_missing():
    v = combine([nudenet(), check(10), judge(erotic=50, composition=60)])
    assert v.score is None and v.missing["overall"] == "grok answered without overall"
    assert v.axes["composition"] == 60.0 and "composition" not in v.missing
    nothing = ScoreCard.abstain("grok", "judge", "nothing to judge: no prior card", provides=AXES)
    assert "nothing to judge" in combine([nudenet(), check(0), nothing]).unscored


def test_technical_only_overall_when_nothing_in_the_graph_scores_overall():
    v = combine([nudenet(), check(20, "blurry")])
    assert v.score == 80.0 and v.missing == {} and v.confidences["overall"] == 0.5
    broken = combine([nudenet(), ScoreCard.abstain("technical", "check", "bad array",
                                                  provides=("overall",)), nudenet(50)],
                     AggregateSettings(min_sources=1))
    assert broken.score is None and "technical abstained: bad array" in broken.unscored


def test_one_expected_voter_missing_lowers_confidence_only():
    vlm = ScoreCard(source="qwen", kind="vlm", provides=AXES, axes={"overall": 70.0})
    down = ScoreCard.abstain("grok", "judge", "timeout", provides=AXES)
    both = combine([vlm, judge(overall=70), check(0)])
    one = combine([vlm, down, check(0)])
    assert one.score == both.score == 70.0 and "overall" not in one.missing
    assert one.confidences["overall"] == pytest.approx(0.5 * 1 / 2)  # lone voice, 1 of 2
    assert both.confidences["overall"] == pytest.approx(1.0)


def test_sources_own_confidence_enters_the_verdict():
    sure = replace(vote("qwen", overall=70), confidence=0.9)
    unsure = replace(vote("joy", overall=72), confidence=0.3)
    v = combine([sure, unsure])
    assert v.confidences["overall"] == pytest.approx((1 - 2 / 40) * 1.0 * (0.9 + 0.3) / 2)
    lone = combine([replace(sure, confidence=1.0)], AggregateSettings(min_sources=1))
    assert lone.confidence == 0.5  # a single source never yields 1.00
    bad = combine([replace(sure, confidence=float("nan")), unsure])
    assert bad.confidences["overall"] == pytest.approx((1 - 2 / 40) * 0.3 / 2)


@settings(max_examples=150, deadline=None)
@given(st.lists(score, min_size=1, max_size=4), st.floats(0, 100), st.integers(0, 3))
def test_an_abstaining_voter_never_makes_an_axis_scored(values, penalty, gone_at):
    """Replacing any vote by an abstention: a scored axis may become unscored, an unscored
    one never becomes scored, and overall never falls back to the check."""
    voters = [judge(overall=x) if i == 0 else replace(judge(overall=x), source=f"v{i}")
              for i, x in enumerate(values)]
    with_all = combine([nudenet(), check(penalty), *voters])
    i = gone_at % len(voters)
    voters[i] = ScoreCard.abstain(voters[i].source, "judge", "down", provides=AXES)
    fewer = combine([nudenet(), check(penalty), *voters])
    assert with_all.score is not None
    if len(values) == 1:
        assert fewer.score is None and "overall" in fewer.missing
    else:
        assert fewer.score is not None
    if len(set(values)) == 1:  # nothing to disagree about: a missing voter only lowers it
        assert fewer.confidence <= with_all.confidence + 1e-9


# -- confidence on the real CLI (issue K) --------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    PILImage.fromarray(skimage.data.astronaut()[::4, ::4]).save(d / "astronaut.png")
    return d


def cli_row(folder, tmp_path, fakeapi, out: str) -> dict:
    """The report row of `score` on the real CLI with a logprob VLM served by `fakeapi`."""
    r = run("score", str(folder), "--sources", "technical,vlm-http",
            "--option", f"vlm-http.base_url={fakeapi.url}", "--option", "vlm-http.model=fake-vlm",
            "--option", "vlm-http.method=logprob", "--option", "vlm-http.comment=false",
            "--out", str(tmp_path / out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (row,) = map(json.loads, (tmp_path / out / "report.jsonl").read_text().splitlines())
    return row


def test_the_vlms_own_confidence_enters_the_verdict(folder, tmp_path, fakeapi, fake_key):
    fakeapi.script(default={"kind": "logprobs", "top": {"3": math.log(0.4),
                                                        "8": math.log(0.6)}})
    unsure = cli_row(folder, tmp_path, fakeapi, "unsure")
    (card,) = [c for c in unsure["cards"] if c["kind"] == "vlm"]
    assert 0 < card["confidence"] < 0.7  # a two-peaked answer: the VLM is unsure
    # one voter on every axis: agreement 0.5 (nobody confirmed it) · coverage 1 · its own
    for axis in ("erotic", "composition", "appeal", "typeset", "overall"):
        assert unsure["confidences"][axis] == pytest.approx(0.5 * card["confidence"])
    assert unsure["confidence"] == pytest.approx(0.5 * card["confidence"], abs=1e-3)

    fakeapi.script(default={"kind": "logprobs", "top": {"8": 0.0}})  # all mass on one level
    sure = cli_row(folder, tmp_path, fakeapi, "sure")
    (card,) = [c for c in sure["cards"] if c["kind"] == "vlm"]
    assert card["confidence"] == pytest.approx(1.0)
    assert sure["confidence"] == pytest.approx(0.5)  # a single source never yields 1.00
    assert sure["confidence"] > unsure["confidence"]
