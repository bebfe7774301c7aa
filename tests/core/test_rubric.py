"""The rubric as a TOML file (`to_toml` / `from_toml`, `python -m scoring rubric`,
`score --rubric`) and calibrations applied by `score --calibration`: real subprocesses, the
judge against the fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import skimage.data
from helpers.run_cli import run
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from scoring.core.rubric import DEFAULT_AXES, MAX_RUBRIC_CHARS, Rubric
from scoring.ensemble.calibrate import Calibration, SourceFit, load_calibrations, save_calibrations

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytest_plugins = ["helpers.fixtures_http"]  # the fake OpenAI-compatible server


TRICKY = 'quotes "like this", a \\ backslash, """triple""", tab\tand\r\nCRLF, \x00\x1f\x7f'


def custom() -> Rubric:
    return Rubric(
        axes={**DEFAULT_AXES, "typeset": "写植：吹き出しと擬音の「読みやすさ」\n50 = 文字なし"},
        anchors=({"description": "a \"weak\" one\nwith two lines", "comment": "弱い。\n改行あり",
                  "scores": {"overall": 22.5, "erotic": 10}},),
        language="en", guidance=f"日本語のガイダンス\n{TRICKY}\n")


def test_the_default_rubric_round_trips_and_reads_like_a_file_to_edit():
    text = Rubric.default().to_toml()
    assert Rubric.from_toml(text) == Rubric.default()
    data = tomllib.loads(text)
    assert set(data) == {"language", "guidance", "axes", "anchors"}
    assert len(data["anchors"]) == 2 and "[axes]" in text and "[[anchors]]" in text
    assert "写植" in text  # UTF-8 as it is, not \u escapes


def test_japanese_quotes_newlines_and_control_characters_round_trip():
    r = custom()
    text = r.to_toml()
    assert Rubric.from_toml(text) == r
    assert tomllib.loads(text)["guidance"] == r.guidance
    assert "日本語のガイダンス\n" in text  # multi-line strings stay readable
    assert Rubric.from_toml(text).system_prompt() == r.system_prompt()


@settings(max_examples=150, deadline=None)
@given(guidance=st.text(), comment=st.text(), meaning=st.text(), language=st.text())
def test_any_text_round_trips(guidance, comment, meaning, language):
    r = Rubric(axes={**DEFAULT_AXES, "appeal": meaning}, language=language, guidance=guidance,
               anchors=({"description": meaning, "scores": {"appeal": 50}, "comment": comment},))
    assert Rubric.from_toml(r.to_toml()) == r


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(custom().to_toml(), encoding="utf-8")
    assert Rubric.load(path) == custom()
    path.write_bytes("guidance = '\u5199'".encode("cp932"))
    with pytest.raises(ValueError, match=r"mine\.toml: not UTF-8"):
        Rubric.load(path)


@pytest.mark.parametrize("text, message", [
    ('language = "ja\n', r"invalid rubric TOML: .*line 1"),
    ("[axes]\nerotic = 'x'\n[axes]\n", r"invalid rubric TOML: .*line 3"),
    ('guidence = "typo"', r"unknown rubric keys \['guidence'\]"),
    ('[axes]\nbeauty = "x"', r"unknown rubric axes \['beauty'\]"),
    ("[axes]\nerotic = 3", r"\[axes\] must map each axis name to its meaning"),
    ("guidance = 3", r"guidance must be a string"),
    ('[[anchors]]\ndescription = "x"', r"anchor 1 lacks scores, comment"),
    ('[[anchors]]\ndescription = "x"\ncomment = "y"\nscores = { looks = 3 }',
     r"anchor 1: scores must map axes"),
])
def test_bad_toml_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        Rubric.from_toml(text)


def test_partial_rubric_keeps_the_defaults():
    r = Rubric.from_toml('language = "en"\n[axes]\nappeal = "cuteness"\n')
    assert r.axes == {**DEFAULT_AXES, "appeal": "cuteness"} and r.anchors == Rubric().anchors


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rubric_images")
    PILImage.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    PILImage.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=90)
    PILImage.new("RGB", (256, 256)).save(d / "black.png")
    return d


def test_cli_rubric_then_score_with_it_reaches_the_judges_prompt(images, tmp_path, fakeapi,
                                                                 fake_key):
    printed = run("rubric", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert Rubric.from_toml(printed.stdout) == Rubric.default()
    edited = printed.stdout.replace('language = "ja"', 'language = "en"').replace(
        'guidance = ""', 'guidance = """\nSAITEN-MARK: 「背景」を重視すること。\nsecond line"""')
    path = tmp_path / "my_rubric.toml"
    path.write_text(edited, encoding="utf-8")
    r = run("score", str(images), "--sources", "nudenet,technical,judge", "--rubric", str(path),
            "--option", f"judge.base_url={fakeapi.url}", "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    systems = [b["messages"][0]["content"] for b in fakeapi.bodies()]
    assert len(systems) == 3
    for s in systems:
        assert "Additional guidance:\nSAITEN-MARK: 「背景」を重視すること。\nsecond line" in s
        assert "comment (1-2 sentences in English)" in s

    fakeapi.script()
    r = run("score", str(images), "--sources", "nudenet,technical,judge",
            "--option", f"judge.base_url={fakeapi.url}", "--out", str(tmp_path / "d"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for b in fakeapi.bodies():  # without --rubric: the built-in one
        assert b["messages"][0]["content"].startswith(Rubric.default().system_prompt())


def test_cli_refuses_a_bad_rubric_file_before_scoring(images, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[axes]\nbeauty = "x"\n', encoding="utf-8")
    r = run("score", str(images), "--rubric", str(path), "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2
    assert "bad.toml: unknown rubric axes ['beauty']" in r.stderr
    assert not (tmp_path / "o").exists()


def test_a_rubric_has_a_size_limit(tmp_path, images):
    """Issue G.7: a 5.3 MB rubric was sent as is; now every way in is a clear error."""
    big = "長い説明。" * (MAX_RUBRIC_CHARS // 4)
    with pytest.raises(ValueError, match=r"rubric too long: .* at most 10,000"):
        Rubric.default().with_guidance(big)
    with pytest.raises(ValueError, match="rubric TOML too long"):
        Rubric.from_toml(f'guidance = "{big}"')
    fits = Rubric.default().with_guidance("x" * (MAX_RUBRIC_CHARS // 2))
    assert len(fits.system_prompt()) <= MAX_RUBRIC_CHARS
    path = tmp_path / "huge.toml"
    path.write_text(f'guidance = "{"x" * 5_300_000}"\n', encoding="utf-8")  # the 5.3 MB one
    r = run("score", str(images), "--rubric", str(path), "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2 and "huge.toml: rubric file too long" in r.stderr
    assert not (tmp_path / "o").exists()


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
