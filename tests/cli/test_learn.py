"""`python -m scoring learn` end to end on the demo samples: score them, rate them in a small
ratings.csv (renamed files matched by content hash), learn, and use the profile in the next
run. The figures it prints are held-out ones; with too little evidence it keeps the defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, cl_tags
from helpers.run_cli import run

from scoring.batch.resume_cache import file_hash
from scoring.ensemble.calibrate import load_ratings
from scoring.ensemble.profile import load_profile
from scoring.ensemble.ratings import HEADER, REPORT
from scoring.host.pack import SAMPLES

RATED = {"astronaut.jpg": 5, "broken_black.png": 1, "broken_blurred.jpg": 2,
         "broken_washed_out.jpg": 2, "chelsea.jpg": 4, "coffee.jpg": 3, "rocket.jpg": 4}


@pytest.fixture(scope="module")
def cl_model(tmp_path_factory) -> Path:
    """A tiny CL tagger whose quality follows brightness."""
    tags = cl_tags()
    w = np.zeros((3, len(tags)), np.float32)
    names = [t for t, _ in tags]
    w[:, names.index("best quality")] = 3.0
    w[:, names.index("worst quality")] = -3.0
    return build_cl(tmp_path_factory.mktemp("cl") / "cl-bright", tags, w, np.zeros(len(tags)))


@pytest.fixture(scope="module")
def scored(tmp_path_factory, cl_model) -> Path:
    """The samples (two renamed) scored by the tiny CL tagger and the technical check."""
    folder = tmp_path_factory.mktemp("samples")
    for f in SAMPLES.iterdir():
        if f.suffix in (".jpg", ".png"):
            shutil.copy(f, folder / f.name)
    out = folder.parent / (folder.name + "-out")
    r = run("score", str(folder), "--sources", "cl,technical", "--out", str(out),
            "--option", f"cl.model_path={cl_model}", cwd=folder.parent)
    assert r.returncode == 0, r.stderr
    return out


def write_ratings(path: Path, rows: list[tuple[str, int, str]]) -> Path:
    lines = [",".join(HEADER), *(f"{n},{r},{h}," for n, r, h in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_learn_on_the_samples_end_to_end(scored, tmp_path, cl_model):
    rows = json.loads("[" + ",".join((scored / "report.jsonl").read_text().splitlines()) + "]")
    assert all(len(r["sha256"]) == 64 for r in rows)
    sha = {r["file"]: r["sha256"] for r in rows}
    assert sha["chelsea.jpg"] == file_hash(SAMPLES / "chelsea.jpg")
    # two files renamed since: their content hash still finds them
    given = [(("renamed-" + n) if n in ("chelsea.jpg", "rocket.jpg") else n, r, sha[n])
             for n, r in RATED.items()]
    ratings = write_ratings(tmp_path / "ratings.csv", given)
    assert load_ratings(ratings)["astronaut.jpg"] == 5  # what `calibrate` reads, too

    r = run("learn", str(ratings), str(scored), "--out", str(tmp_path / "profile.json"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "7 of 7 ratings matched" in out and "(7 by content hash)" in out
    assert "held-out Spearman" in out
    for label in ("source cl", "default ensemble", "learned profile",
                  "gain (learned − default)"):
        row = next(x for x in out.splitlines() if x.startswith(label))
        assert row[len(label):].split()[0] == "7", row  # n: every rating, held out
    assert "Not better than the defaults on held-out images" in out  # one voter: nothing to win
    profile = load_profile(tmp_path / "profile.json")
    assert profile.empty and profile.fit["n"] == 7 and profile.fit["adopted"] is False

    again = run("score", str(SAMPLES), "--sources", "cl,technical", "--out",
                str(tmp_path / "again"), "--option", f"cl.model_path={cl_model}",
                "--calibration", str(tmp_path / "profile.json"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_the_report_is_found_from_the_ratings(scored, tmp_path):
    rows = [(n, r, "") for n, r in RATED.items()]
    text = ",".join(HEADER) + f"\n{REPORT}{scored}\n" + "".join(f"{n},{r},,\n" for n, r, _ in rows)
    (tmp_path / "mine.csv").write_text(text, encoding="utf-8")
    r = run("learn", str(tmp_path / "mine.csv"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"matched a row of {scored}" in r.stdout
    assert (tmp_path / "profile.json").is_file()


def test_the_offline_default_has_nothing_to_weigh(tmp_path):
    out = tmp_path / "demo"
    assert run("demo", "--out", str(out), cwd=tmp_path).returncode == 0
    ratings = write_ratings(out / "ratings.csv", [(n, r, "") for n, r in RATED.items()])
    r = run("learn", str(ratings), cwd=tmp_path)
    assert r.returncode == 1
    assert "no source but a technical check scores overall" in r.stderr
    assert not (out / "profile.json").exists()


@pytest.mark.parametrize(("content", "problem"), [
    ("file,rating\nastronaut.jpg,great\n", "ratings.csv:2: rating 'great' is not a number"),
    ("file,rating\nnothing-like-this.png,3\n", "no rating matched a report row"),
])
def test_bad_ratings_say_what_is_wrong(scored, tmp_path, content, problem):
    (tmp_path / "ratings.csv").write_text(content, encoding="utf-8")
    r = run("learn", str(tmp_path / "ratings.csv"), str(scored), cwd=tmp_path)
    assert r.returncode in (1, 2) and problem in r.stderr and "Traceback" not in r.stderr


def test_a_missing_report_is_named(tmp_path):
    write_ratings(tmp_path / "ratings.csv", [("a.png", 3, "")])
    r = run("learn", str(tmp_path / "ratings.csv"), str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2 and "no report.jsonl in" in r.stderr
