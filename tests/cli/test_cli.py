"""`python -m scoring` (`scoring.cli`) as a real subprocess: every command's bad
arguments end in a clear error and exit code, before anything is scored."""

from __future__ import annotations

import pytest
from helpers.run_cli import run

pytest_plugins = ["helpers.fixtures_http"]  # the fake OpenAI-compatible server


@pytest.mark.parametrize(("args", "code", "message"), [
    (["score", "/nonexistent/dir"], 2, "does not exist"),
    (["score", ".", "--sources", "nope"], 2, "unknown source(s) nope"),
    (["score", ".", "--weights", "wd=lots"], 2, "source=number"),
    (["score", ".", "--min-sources", "0"], 2, "--min-sources must be at least 1"),
    (["score", "."], 1, "no images in"),
    (["demo", "--samples", "/nonexistent"], 2, "no sample images"),
])
def test_clear_errors(tmp_path, args, code, message):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == code and message in r.stderr, (r.stdout, r.stderr)


def test_watch_refuses_bad_arguments(tmp_path):
    r = run("watch", str(tmp_path / "nowhere"), "--comfy", "off", cwd=tmp_path)
    assert r.returncode == 2 and "is not a folder" in r.stderr
    r = run("watch", str(tmp_path), "--idle-exit", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "--idle-exit must not be negative" in r.stderr
