"""`python -m scoring score` (`scoring.batch.score_cmd`) as a real subprocess on real files:
the calibration it is given changes each verdict as the fit says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.run_cli import run

from scoring.ensemble.calibrate import Calibration, SourceFit, load_calibrations, save_calibrations

pytest_plugins = ["helpers.photos"]  # `images`: a folder of real photos


def _report(folder: Path) -> dict[str, dict]:
    lines = (folder / "report.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["file"]: row for row in map(json.loads, lines)}


def test_cli_calibration_changes_the_verdict_as_the_fit_says(images, tmp_path):
    plain = tmp_path / "plain"
    r = run("score", str(images), "--out", str(plain), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cal = Calibration("nudenet", "erotic", slope=0.5, intercept=40.0)
    path = save_calibrations(tmp_path / "cal.json", [SourceFit("nudenet", "erotic", 3, 0.9, cal)])
    assert load_calibrations(path) == [cal]
    calibrated = tmp_path / "calibrated"
    r = run("score", str(images), "--calibration", str(path), "--out", str(calibrated),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    before, after = _report(plain), _report(calibrated)
    assert set(before) == set(after) == {"astronaut.png", "coffee.jpg", "black.png"}
    for name, row in before.items():
        raw = row["axes"]["erotic"]
        assert after[name]["axes"]["erotic"] == pytest.approx(0.5 * raw + 40.0, abs=0.01)
        assert after[name]["axes"]["overall"] == row["axes"]["overall"]  # other axes untouched
