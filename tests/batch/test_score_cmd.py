"""`python -m scoring score` (`scoring.batch.score_cmd`): the sources it makes from its
options (a GGUF paired by name as the VLM Loader pairs it), and as a real subprocess on real
files, the calibration it is given changing each verdict as the fit says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.run_cli import run

from scoring.batch.score_cmd import make_sources
from scoring.ensemble.calibrate import Calibration, SourceFit, load_calibrations, save_calibrations
from scoring.sources import Unavailable

pytest_plugins = ["helpers.photos"]  # `images`: a folder of real photos


def test_the_cli_pairs_a_gguf_by_name_as_the_loader_does(tmp_path):
    from scoring.sources.vlm import files as models

    for name in ("model-Q4_K_M.gguf", "mmproj-model-f16.gguf", "other/m.gguf",
                 "other/mmproj-a.gguf", "other/mmproj-b.gguf"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"GGUF")
    (tmp_path / "tiny-llava").mkdir()
    (tmp_path / "tiny-llava" / "config.json").write_text("{}")
    assert models.list_vlms([tmp_path]) == (
        ["model-Q4_K_M.gguf", "other/m.gguf", "tiny-llava"],
        ["mmproj-model-f16.gguf", "other/mmproj-a.gguf", "other/mmproj-b.gguf"])
    (src,) = make_sources(["vlm-llamacpp"], print,
                          {"vlm-llamacpp": {"model": "model-Q4_K_M.gguf"}}, [tmp_path])
    assert src.mmproj_path == tmp_path / "mmproj-model-f16.gguf"
    assert models.vlm_files("tiny-llava", roots=[tmp_path]) == (
        "vlm-transformers", {"model_dir": str(tmp_path / "tiny-llava")})
    (two,) = make_sources(["vlm-llamacpp"], lambda _: None,
                          {"vlm-llamacpp": {"model": "other/m.gguf"}}, [tmp_path])
    assert isinstance(two, Unavailable) and "choose the mmproj for m.gguf" in two.why
    (named,) = make_sources(["vlm-llamacpp"], print, {"vlm-llamacpp": {
        "model": "other/m.gguf", "mmproj": "other/mmproj-b.gguf"}}, [tmp_path])
    assert named.mmproj_path == tmp_path / "other" / "mmproj-b.gguf"


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
