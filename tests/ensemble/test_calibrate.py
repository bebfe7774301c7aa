"""Rank correlation with the user's ratings and per-source linear calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.core.cards import AXES, ScoreCard
from scoring.ensemble.aggregate import combine
from scoring.ensemble.calibrate import (
    MAX_CALIBRATION_BYTES,
    Calibration,
    apply_calibrations,
    compare,
    fit_linear,
    load_ratings,
    rankdata,
    save_calibrations,
    source_values,
    spearman,
)
from scoring.ensemble.profile import load_confined_profile, load_profile


def load_confined(name, root):
    """What the Aggregate node reads: the calibrations of a profile in the user folder."""
    return load_confined_profile(name, root).calibrations


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata([]).tolist() == []


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # no ties: 1 − 6Σd²/(n(n²−1)); ranks y = 2,1,4,3,5 → Σd² = 4 → 1 − 24/120 = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 6, 15).astype(float)
        y = x + rng.integers(0, 4, 15)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_fit_linear():
    slope, intercept = fit_linear([10, 20, 30, 40], [25, 45, 65, 85])
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(5.0)
    assert fit_linear([5, 5, 5], [1, 2, 3]) is None


def test_load_ratings(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("file,rating\na.png,4\n\n# a comment\nsub/b.jpg, 2.5 ,extra\n", encoding="utf-8")
    assert load_ratings(p) == {"a.png": 4.0, "sub/b.jpg": 2.5}
    p.write_text("a.png,4\nb.png,good\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.csv:2: rating 'good' is not a number"):
        load_ratings(p)
    p.write_text("a.png\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 'file,rating'"):
        load_ratings(p)


def verdict(vlm: float, tagger: float, penalty: float):
    return combine([
        ScoreCard(source="vlm", kind="vlm", provides=AXES, axes={"overall": vlm}),
        ScoreCard(source="vlm", kind="vlm", provides=AXES, axes={"overall": vlm + 2}, repeat=1),
        ScoreCard(source="wd", kind="tagger", provides=("overall",), axes={"overall": tagger}),
        ScoreCard(source="technical", kind="check", provides=("overall",), penalty=penalty),
    ])


def test_source_values():
    v = verdict(60, 70, 10)
    assert source_values(v) == {"technical": 90.0, "vlm": 61.0, "wd": 70.0,
                                "ensemble": pytest.approx(v.score)}
    assert source_values(v, "erotic") == {}


def test_compare_and_calibrate(tmp_path):
    # the user's 1–5 ratings follow the VLM; the tagger says the opposite
    rows, ratings = [], {}
    for i, (vlm, wd, stars) in enumerate([(20, 80, 1), (40, 60, 2), (60, 40, 3), (80, 20, 5)]):
        rows.append((f"out/img{i}.png", verdict(vlm, wd, 0)))
        ratings[f"img{i}.png"] = stars
    ratings["unrelated.png"] = 3
    fits = {f.source: f for f in compare(rows, ratings)}
    assert list(fits) == ["technical", "vlm", "wd", "ensemble"]
    assert fits["vlm"].n == 4 and fits["vlm"].spearman == pytest.approx(1.0)
    assert fits["wd"].spearman == pytest.approx(-1.0)
    assert fits["technical"].spearman is None and fits["technical"].calibration is None
    assert fits["ensemble"].calibration is None
    cal = fits["vlm"].calibration
    # ratings 1..5 → 0..100; least squares on vlm medians 21, 41, 61, 81
    x = np.array([21, 41, 61, 81.0])
    y = np.array([0, 25, 50, 100.0])
    slope, intercept = np.polyfit(x, y, 1)
    assert cal.slope == pytest.approx(slope) and cal.intercept == pytest.approx(intercept)
    # explicit scale 0–10 maps the same ratings lower
    low = {f.source: f for f in compare(rows, ratings, scale=(0, 10))}["vlm"].calibration
    assert low(81) < cal(81)

    path = save_calibrations(tmp_path / "cal.json", list(fits.values()))
    cals = load_profile(path).calibrations
    assert [c.source for c in cals] == ["vlm", "wd"]
    card = ScoreCard(source="vlm", kind="vlm", axes={"overall": 50.0, "erotic": 10.0})
    other = ScoreCard(source="joy", kind="vlm", axes={"overall": 50.0})
    out = apply_calibrations([card, other], cals)
    assert out[0].axes["overall"] == pytest.approx(cal(50)) and out[0].axes["erotic"] == 10
    assert out[1] is other and card.axes["overall"] == 50.0  # originals untouched


def test_calibration_clamps():
    cal = Calibration("vlm", "overall", 2.0, -50.0)
    assert cal(10) == 0.0 and cal(80) == 100.0 and cal(40) == pytest.approx(30.0)


# -- confined files (issue G.5) --------------------------------------------------------

SECRET = "hf_SAITENSECRETCONTENT0123456789"


@pytest.fixture
def user(tmp_path):
    """A ComfyUI user directory, and a folder beside it holding a real file."""
    root, outside = tmp_path / "user", tmp_path / "outside"
    (root / "calibrations").mkdir(parents=True)
    outside.mkdir()
    cal = [{"source": "wd", "axis": "erotic", "slope": 0.5, "intercept": 10.0}]
    (root / "calibrations" / "cal.json").write_text(json.dumps(cal), encoding="utf-8")
    (outside / "real.json").write_text(json.dumps(cal), encoding="utf-8")
    return root, outside


def test_a_file_in_the_user_directory_is_read(user):
    root, _ = user
    assert load_confined("calibrations/cal.json", root) == [Calibration("wd", "erotic", 0.5, 10)]
    (root / "link.json").symlink_to(root / "calibrations" / "cal.json")  # a link inside: fine
    assert load_confined(" link.json ", root)[0].slope == 0.5


@pytest.mark.parametrize("shape", ["{out}/real.json", "../outside/real.json",
                                   "calibrations/../../outside/real.json",
                                   "..\\outside\\real.json", "~/real.json", "C:\\real.json",
                                   "C:real.json"])
def test_paths_out_are_refused_without_saying_what_exists(user, shape):
    root, outside = user
    real = shape.format(out=outside)
    fake = real.replace("real.json", "none.json")
    with pytest.raises(ValueError) as a:
        load_confined(real, root)
    with pytest.raises(ValueError) as b:
        load_confined(fake, root)
    assert "relative to ComfyUI's user directory" in str(a.value)
    assert str(a.value).replace("real", "X") == str(b.value).replace("none", "X")


def test_a_symlink_out_is_refused_whether_its_target_exists_or_not(user):
    root, outside = user
    (root / "out.json").symlink_to(outside / "real.json")
    (root / "gone.json").symlink_to(outside / "none.json")
    (root / "dir").symlink_to(outside, target_is_directory=True)
    messages = []
    for name in ("out.json", "gone.json", "dir/real.json", "dir/none.json"):
        with pytest.raises(ValueError, match="leads outside ComfyUI's user directory") as e:
            load_confined(name, root)
        messages.append(str(e.value).replace(name, "X"))
    assert len(set(messages)) == 1


def test_errors_never_quote_the_file(user):
    root, _ = user
    cases = {
        "entry.json": json.dumps([{"source": SECRET, "axis": "x", "slope": "1"}]),
        "notjson.json": f"{SECRET} is not JSON",
        "dict.json": json.dumps({"token": SECRET}),
    }
    for name, text in cases.items():
        (root / name).write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=name) as e:
            load_confined(name, root)
        assert SECRET not in str(e.value) and SECRET[3:15] not in str(e.value)
    (root / "bytes.json").write_bytes(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(ValueError, match="not UTF-8") as e:
        load_confined("bytes.json", root)
    assert SECRET not in str(e.value) and "xff" not in str(e.value)
    (root / "huge.json").write_bytes(b" " * (MAX_CALIBRATION_BYTES + 1))
    with pytest.raises(ValueError, match="larger than"):
        load_confined("huge.json", root)
    with pytest.raises(ValueError, match=r"not found: calibrations/none\.json"):
        load_confined("calibrations/none.json", root)
