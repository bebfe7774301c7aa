"""`python -m scoring calibrate` and `rubric` as real subprocesses: the printed rubric is the
one to edit and `score --rubric` sends the edited one to the judge (the fake
OpenAI-compatible server on 127.0.0.1)."""

from __future__ import annotations

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
