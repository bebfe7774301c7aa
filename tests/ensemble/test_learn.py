"""`learn` on simulated ensembles with known truth: each image has a true quality t; the
user rates it 1–5 from t with noise; each source scores it from t with its own noise, bias,
abstentions — or against it (an adversary). The learned profile is then judged on 2,000 fresh
images of the same world against t itself: it must beat the defaults when the ratings support
it, and a profile that is not better must never be adopted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from scoring.core.cards import ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine
from scoring.ensemble.calibrate import spearman
from scoring.ensemble.learn import MIN_RATED, Interval, Rated, _more, learn, nnls_ridge, rho
from scoring.ensemble.profile import Profile

Source = Callable[[float, np.random.Generator], float | None]


def world(n: int, seed: int, sources: dict[str, Source], technical: bool = False
          ) -> list[tuple[float, list[ScoreCard]]]:
    """n images of true quality t ~ U(0, 1), each with one card per source (None: it
    abstained) and, with `technical`, a check that takes 40 points off a tenth of them
    (broken frames: their true quality is low)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = float(rng.uniform(0, 1))
        broken = technical and rng.uniform() < 0.1
        if broken:
            t *= 0.2
        cards = []
        for name, f in sources.items():
            v = f(t, rng)
            cards.append(ScoreCard.abstain(name, "tagger", "no opinion", provides=("overall",))
                         if v is None else
                         ScoreCard(source=name, kind="tagger", provides=("overall",),
                                   axes={"overall": float(np.clip(v, 0, 100))}))
        if technical:
            cards.append(ScoreCard(source="technical", kind="check", provides=("overall",),
                                   penalty=40.0 if broken else 0.0))
        out.append((t, cards))
    return out


def rate(images: list[tuple[float, list[ScoreCard]]], seed: int, noise: float = 0.08
         ) -> list[Rated]:
    """The user's 1–5 ratings of the images: their true quality, noisy, rounded."""
    rng = np.random.default_rng(seed + 1000)
    return [Rated(float(np.clip(np.round(1 + 4 * (t + rng.normal(0, noise))), 1, 5)), cards)
            for t, cards in images]


def truth(profile: Profile, fresh: list[tuple[float, list[ScoreCard]]]) -> float:
    """Spearman of the ensemble under `profile` against the true quality."""
    s = profile.settings(AggregateSettings())
    got = [combine(profile.apply(c), s).score for _, c in fresh]
    v = np.array([np.nan if x is None else x for x in got])
    return rho(v, np.array([t for t, _ in fresh]))


def noisy(sd: float, bias: float = 0.0, gain: float = 100.0, absent: float = 0.0) -> Source:
    def f(t: float, rng: np.random.Generator) -> float | None:
        if absent and rng.uniform() < absent:
            return None
        return bias + gain * t + rng.normal(0, sd)
    return f


ADVERSARIAL = {"good": noisy(10), "biased": noisy(20, bias=40, gain=40),
               "adversary": lambda t, rng: 100 * (1 - t) + rng.normal(0, 10)}
NOISE_AND_BIAS = {"precise": noisy(6, bias=35, gain=60, absent=0.4), "rough": noisy(30),
                  "rougher": noisy(40, bias=-10)}
EQUAL = {"a": noisy(20), "b": noisy(20), "c": noisy(20)}


def test_rho_skips_the_images_a_source_did_not_score():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    assert rho(x, y) == pytest.approx(spearman(x, y))
    x[::4] = np.nan
    assert rho(x, y) == pytest.approx(spearman(x[~np.isnan(x)], y[~np.isnan(x)]))
    assert rho(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0])) is None
    assert rho(np.ones(5), np.arange(5.0)) is None


def test_nnls_ridge_is_the_constrained_least_squares():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 3))
    y = a @ np.array([0.7, -0.5, 0.2]) + rng.normal(0, 0.05, 200)
    prior = np.full(3, 1 / 3)
    # the exact answer: least squares on each set of columns, the best with no negative weight
    best, exact = np.inf, np.zeros(3)
    for keep in ([0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]):
        sol = np.linalg.lstsq(a[:, keep], y, rcond=None)[0]
        loss = float(np.sum((a[:, keep] @ sol - y) ** 2))
        if (sol >= 0).all() and loss < best:
            best, exact = loss, np.zeros(3)
            exact[keep] = sol
    w = nnls_ridge(a, y, prior, 0.0)
    assert w[1] == 0 and w == pytest.approx(exact, abs=1e-4)
    assert nnls_ridge(a, y, prior, 1e6) == pytest.approx(prior, abs=1e-3)  # all prior


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_adversarial_source_is_learned_and_beats_the_defaults(seed):
    got = learn(rate(world(80, seed, ADVERSARIAL), seed), scale=(1, 5), seed=seed)
    fresh = world(2000, 99, ADVERSARIAL)
    assert got.adopted and got.gain.low > 0 and got.more == 0
    assert got.learned.value > got.default.value + 0.2
    assert got.n == 80 and got.learned.n == 80 and set(got.sources) == set(ADVERSARIAL)
    cal = {c.source: c for c in got.profile.calibrations}
    assert cal["adversary"].slope < 0  # turned around onto the ratings' scale
    assert got.profile.weights["biased"] < got.profile.weights["good"]
    assert truth(got.profile, fresh) > truth(Profile(), fresh) + 0.3
    print(f"\nadversarial world, 80 ratings: held-out ρ default {got.default.value:.3f}, "
          f"learned {got.learned.value:.3f} (gain [{got.gain.low:+.3f}, {got.gain.high:+.3f}]); "
          f"true ρ default {truth(Profile(), fresh):.3f}, learned {truth(got.profile, fresh):.3f}")


def test_noise_bias_and_abstentions_are_calibrated_and_weighted():
    """A precise source that is biased and often abstains, two rough ones: the default
    equal mean jumps with each abstention; calibration and weights fix it."""
    images = world(300, 5, NOISE_AND_BIAS, technical=True)
    got = learn(rate(images, 5), scale=(1, 5), seed=5)
    fresh = world(2000, 98, NOISE_AND_BIAS, technical=True)
    w = got.profile.weights
    assert got.adopted and w["precise"] > 2 * max(w["rough"], w["rougher"])
    assert got.sources["precise"].n < 200  # it abstained on the rest
    assert truth(got.profile, fresh) > truth(Profile(), fresh) + 0.03
    print(f"\nnoise, bias and abstentions, 300 ratings: held-out ρ default "
          f"{got.default.value:.3f}, learned {got.learned.value:.3f} (gain [{got.gain.low:+.3f}, "
          f"{got.gain.high:+.3f}]); true ρ default {truth(Profile(), fresh):.3f}, learned "
          f"{truth(got.profile, fresh):.3f}")
    assert got.profile.fit["adopted"] is True and got.profile.fit["n"] == 300


@pytest.mark.parametrize("n", [20, 60])
def test_never_adopts_a_worse_profile_where_the_defaults_are_right(n):
    """Three equally good sources: the default equal weights are already the best. Over
    many rating sets, whatever is adopted is never worse than the defaults on the truth."""
    fresh = world(2000, 97, EQUAL)
    base = truth(Profile(), fresh)
    adopted = 0
    for seed in range(6):
        got = learn(rate(world(n, seed, EQUAL), seed), scale=(1, 5), seed=seed, boot=300)
        assert got.profile is got.fitted or got.profile.empty
        if got.adopted:
            adopted += 1
            assert truth(got.profile, fresh) >= base - 0.01
        else:
            assert got.profile.empty and got.profile.fit["adopted"] is False
    assert adopted <= 1
    print(f"\nequally good sources, {n} ratings: adopted {adopted} of 6 rating sets; true ρ of "
          f"the defaults {base:.3f}")


def test_too_few_ratings_say_so():
    images = world(MIN_RATED - 1, 3, ADVERSARIAL)
    with pytest.raises(ValueError, match=f"{MIN_RATED - 1} rated images .* at least {MIN_RATED}"):
        learn(rate(images, 3), scale=(1, 5))
    down = [ScoreCard.abstain("a", "tagger", "down"), ScoreCard(source="b", kind="tagger",
                                                                 axes={"overall": 50})]
    with pytest.raises(ValueError, match="0 rated images have a score on overall"):
        learn([Rated(3.0, down)] * 20, scale=(1, 5))
    technical_only = [ScoreCard(source="nudenet", kind="detector", axes={"erotic": 10}),
                      ScoreCard(source="technical", kind="check", provides=("overall",))]
    with pytest.raises(ValueError, match="no source but a technical check scores overall"):
        learn([Rated(3.0, technical_only)] * 20, scale=(1, 5))


def test_a_small_gain_asks_for_more_ratings():
    """Two sources, one twice as noisy: better weights help a little; with 24 ratings the
    interval still spans zero, and `more` says how many would settle it."""
    sources = {"sharp": noisy(15), "blurry": noisy(45)}
    got = learn(rate(world(24, 11, sources), 11), scale=(1, 5), seed=11)
    assert not got.adopted and got.gain.value > 0 and got.more > 0
    assert got.profile.empty and got.fitted.weights["sharp"] > got.fitted.weights["blurry"]


def test_more_follows_the_interval():
    assert _more(Interval(0.1, -0.1, 0.3, 40)) == 40 * 4 - 40  # (half 0.2 / gain 0.1)² · n
    assert _more(Interval(0.1, 0.01, 0.2, 40)) == 0
    assert _more(Interval(-0.05, -0.2, 0.1, 40)) is None
    assert _more(Interval(None, None, None, 5)) is None


def test_a_report_made_with_a_profile_is_learned_from_its_raw_scores():
    """Cards a profile calibrated keep their raw values: learning again starts from those,
    and the defaults it compares with are the real defaults."""
    from scoring.ensemble.calibrate import Calibration

    images = world(60, 7, ADVERSARIAL)
    rated = rate(images, 7)
    old = Profile([Calibration("good", "overall", 0.0, 50.0)])  # flattens the good source
    again = [Rated(r.rating, old.apply(r.cards)) for r in rated]
    assert learn(again, scale=(1, 5), boot=200) == learn(rated, scale=(1, 5), boot=200)
