"""The command line's shared options (`scoring.cli.options`) on the real CLI: `--option`
reaches the source it names (and a malformed one is refused), a bad `--rubric` or
`--calibration` file is refused before anything is scored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.models.onnx_models import build_wd, wd_tags
from helpers.run_cli import run

pytest_plugins = ["helpers.photos"]  # `images`: a folder of real photos


def test_cli_refuses_a_bad_rubric_file_before_scoring(images, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[axes]\nbeauty = "x"\n', encoding="utf-8")
    r = run("score", str(images), "--rubric", str(path), "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2
    assert "bad.toml: unknown rubric axes ['beauty']" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, message", [
    ("[", "cal.json: not calibration JSON"),
    ('{"source": "wd"}', "cal.json: expected a list"),
    ('[{"source": "wd", "axis": "overall", "slope": "1"}]', "cal.json: entry 1 is not"),
])
def test_cli_refuses_a_bad_calibration_file(images, tmp_path, content, message):
    path = tmp_path / "cal.json"
    path.write_text(content, encoding="utf-8")
    r = run("score", str(images), "--calibration", str(path), "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr
    missing = run("score", str(images), "--calibration", str(tmp_path / "nope.json"),
                  cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_source_options_reach_the_source(folder, tmp_path):
    tags = wd_tags()
    weights = np.zeros((3, len(tags)), np.float32)
    weights[2, 3] = 8.0  # `explicit` follows the red channel's mean
    model = build_wd(tmp_path / "wd-tiny", tags, weights, np.full(len(tags), -4.0))
    out = tmp_path / "out"
    r = run("score", str(folder), "--sources", "wd,nudenet,technical", "--option",
            f"wd.model_path={model}", "--option", "wd.weight=0.5", "--out", str(out),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    by_name = {json.loads(x)["file"]: json.loads(x) for x in
               (out / "report.jsonl").read_text().splitlines()}
    astro = by_name["astronaut.png"]
    assert astro["used"] == ["nudenet", "technical", "wd"]
    wd = next(c for c in astro["cards"] if c["source"] == "wd")
    assert wd["weight"] == 0.5 and wd["axes"]["erotic"] > 0

    missing = run("score", str(folder / "coffee.jpg"), "--sources", "wd,technical", "--out",
                  str(out), cwd=tmp_path)
    assert missing.returncode == 0
    assert "(pass --option wd.model_path=...)" in missing.stdout
    bad = run("score", str(folder), "--option", "wd", cwd=tmp_path)
    assert bad.returncode == 2 and "SOURCE.NAME=VALUE" in bad.stderr
