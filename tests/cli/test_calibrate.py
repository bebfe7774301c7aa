"""`python -m scoring calibrate` and `rubric` (`scoring.cli.calibrate`) as real
subprocesses: a report compared with the user's ratings gives a calibration file (a bad
ratings file is refused), and the printed rubric is the one to edit — `score --rubric` sends
the edited one to the judge (the fake OpenAI-compatible server on 127.0.0.1)."""

from __future__ import annotations

import json

from helpers.run_cli import run

from scoring.core.rubric import Rubric

pytest_plugins = ["helpers.fixtures_http", "helpers.photos"]  # fakeapi; `images`


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


def test_calibrate_command(folder, tmp_path):
    out = tmp_path / "out"
    assert run("score", str(folder), "--sources", "technical", "--min-sources", "1",
               "--out", str(out), cwd=tmp_path).returncode == 0
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("file,rating\nastronaut.png,5\ncoffee.jpg,4\nblack.png,1\none.png,1\n"
                       "rgba.png,3\n")
    r = run("calibrate", str(out / "report.jsonl"), str(ratings), "--scale", "1,5",
            "--out", str(tmp_path / "cal.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5 of 6 report rows matched a rating" in r.stdout
    ensemble = next(x for x in r.stdout.splitlines() if x.startswith("ensemble"))
    assert float(ensemble.split()[2]) > 0.5  # broken frames rated low, scored low
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert [c["source"] for c in cal] == ["technical"]
    bad = run("calibrate", str(out / "report.jsonl"), str(folder / "notes.txt"), cwd=tmp_path)
    assert bad.returncode == 2 and "expected 'file,rating'" in bad.stderr
