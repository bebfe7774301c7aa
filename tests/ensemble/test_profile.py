"""The profile JSON: versioned, validated on load (size, types, ranges, known keys), read by
the Aggregate node and the CLI alike; `calibrate --out`'s bare list still loads."""

from __future__ import annotations

import json
import os

import pytest

from scoring.core.cards import ScoreCard
from scoring.ensemble.aggregate import AggregateSettings, combine
from scoring.ensemble.calibrate import MAX_CALIBRATION_BYTES, Calibration
from scoring.ensemble.profile import (
    KEY,
    MAX_ENTRIES,
    VERSION,
    Profile,
    load_confined_profile,
    load_profile,
    save_profile,
)

PROFILE = Profile([Calibration("wd", "overall", 0.5, 10.0)], {"wd": 0.25, "aesthetic": 1.75},
                  fit={"n": 40, "default": 0.3, "learned": 0.6, "adopted": True,
                       "scale": [1.0, 5.0]})


def write(tmp_path, data, name="p.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return p


def test_round_trip(tmp_path):
    path = save_profile(tmp_path / "profile.json", PROFILE)
    assert json.loads(path.read_text())[KEY] == VERSION
    assert load_profile(path) == PROFILE
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # no temp left


def test_calibrate_list_is_a_version_0_profile(tmp_path):
    old = [{"source": "wd", "axis": "overall", "slope": 2, "intercept": -5}]
    p = load_profile(write(tmp_path, old))
    assert p.version == 0 and p.weights == {} and p.calibrations == [
        Calibration("wd", "overall", 2.0, -5.0)]


def test_weights_and_calibrations_reach_the_ensemble():
    cards = [ScoreCard(source="wd", kind="tagger", provides=("overall",), axes={"overall": 80}),
             ScoreCard(source="aesthetic", kind="tagger", provides=("overall",),
                       axes={"overall": 20})]
    v = combine(PROFILE.apply(cards), PROFILE.settings())
    # wd calibrated to 50; weighted mean (50·0.25 + 20·1.75) / 2
    assert v.score == pytest.approx((50 * 0.25 + 20 * 1.75) / 2)
    mine = PROFILE.settings(AggregateSettings(k=3.0, weights={"wd": 1.0}))
    assert mine.weights == {"wd": 1.0, "aesthetic": 1.75} and mine.k == 3.0  # explicit wins
    assert "wd 0.25" in PROFILE.describe() and "wd.overall" in PROFILE.describe()
    assert Profile().empty and not PROFILE.empty


@pytest.mark.parametrize(("data", "problem"), [
    ({KEY: 2, "weights": {}}, "version 2 is not one this Saiten reads"),
    ({KEY: True}, "version True"),
    ({KEY: 1, "weights": {"wd": -1}}, "weight of wd: must be a number from 0"),
    ({KEY: 1, "weights": {"wd": "1"}}, "weight of wd"),
    ({KEY: 1, "weights": {"wd": True}}, "weight of wd"),
    ({KEY: 1, "weights": {"wd": 1e9}}, "weight of wd"),
    ({KEY: 1, "weights": {"x\u0000": 1}}, "a weight's source must be a name"),
    ({KEY: 1, "weights": [1]}, "weights must be an object"),
    ({KEY: 1, "weights": {f"s{i}": 1 for i in range(MAX_ENTRIES + 1)}}, "at most"),
    ({KEY: 1, "calibrations": [{"source": "wd", "axis": "overall", "slope": 1e9,
                                "intercept": 0}]}, "entry 1 is not .*: slope must be"),
    ({KEY: 1, "calibrations": [{"source": "wd", "axis": "overall", "slope": 1}]},
     "entry 1 is not"),
    ({KEY: 1, "calibrations": {}}, "calibrations must be a list"),
    ({KEY: 1, "evil": "<script>"}, "unknown field"),
    ({"weights": {}}, "expected a list .* or a profile object"),
    ("[1, 2", "not calibration JSON"),
    ("[" * 100000 + "]" * 100000, "not calibration JSON"),
])
def test_bad_profiles_are_refused_without_quoting_them(tmp_path, data, problem):
    with pytest.raises(ValueError, match=problem) as e:
        load_profile(write(tmp_path, data))
    assert str(e.value).startswith("p.json: ") and "<script>" not in str(e.value)


def test_fit_keeps_known_fields_of_the_right_type(tmp_path):
    p = load_profile(write(tmp_path, {KEY: 1, "fit": {"n": 3, "default": "x", "adopted": 1,
                                                       "scale": [1, 5], "other": 2}}))
    assert p.fit == {"n": 3, "scale": [1.0, 5.0]}


def test_size_and_encoding(tmp_path):
    big = write(tmp_path, "[" + " " * MAX_CALIBRATION_BYTES + "]")
    with pytest.raises(ValueError, match="larger than"):
        load_profile(big)
    raw = tmp_path / "bin.json"
    raw.write_bytes(b"\xff\xfe[]")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_profile(raw)


def test_confined_to_the_user_folder(tmp_path):
    user, outside = tmp_path / "user", tmp_path / "secret"
    user.mkdir()
    outside.mkdir()
    save_profile(user / "mine.json", PROFILE)
    save_profile(outside / "theirs.json", PROFILE)
    os.symlink(outside / "theirs.json", user / "link.json")
    assert load_confined_profile("mine.json", user) == PROFILE
    for name, why in (("../secret/theirs.json", "without '..'"),
                      (str(outside / "theirs.json"), "without '..'"),
                      ("link.json", "leads outside"), ("nope.json", "not found")):
        with pytest.raises(ValueError, match=why) as e:
            load_confined_profile(name, user)
        assert str(e.value).startswith("calibration file")
    write(user, {KEY: 9}, "future.json")
    with pytest.raises(ValueError, match=r"calibration file future\.json: version 9"):
        load_confined_profile("future.json", user)
