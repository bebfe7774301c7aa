"""The command line's shared options (`scoring.batch.options`) on the real CLI: a bad
`--rubric` or `--calibration` file is refused before anything is scored."""

from __future__ import annotations

import pytest
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
