"""`python -m scoring` as a real subprocess on real files, and the pipeline it runs."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import skimage.data
from helpers.models.onnx_models import build_wd, wd_tags
from helpers.run_cli import REPO, run
from PIL import Image as PILImage

from scoring.batch.cli import SAMPLES, Unavailable, score_paths
from scoring.core.cards import Sheet
from scoring.core.images import Image
from scoring.ensemble.aggregate import AggregateSettings
from scoring.sources import ScoreContext, Source
from scoring.sources.technical import TechnicalCheck

pytest_plugins = ["helpers.fixtures_http"]  # the fake OpenAI-compatible server


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    PILImage.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    PILImage.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=90)
    PILImage.new("RGB", (256, 256)).save(d / "black.png")
    PILImage.new("RGB", (1, 1), (200, 30, 30)).save(d / "one.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = skimage.data.chelsea()[:64, :64]
    rgba[..., 3] = 255
    PILImage.fromarray(rgba, "RGBA").save(d / "rgba.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (d / "notes.txt").write_text("not an image")
    return d


def rows(table: str) -> dict[str, str]:
    return {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}


def test_score_folder(folder, tmp_path):
    out = tmp_path / "out"
    r = run("score", str(folder), "--sources", "technical", "--min-sources", "1",
            "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = rows(r.stdout.split("\n\n")[0])
    assert set(table) == {"astronaut.png", "black.png", "coffee.jpg", "corrupt.png", "one.png",
                          "rgba.png"}
    assert "unscored: corrupt.png: cannot read image" in table["corrupt.png"]
    assert "black frame" in table["black.png"] and "tiny image (1×1 px)" in table["one.png"]
    assert "5 of 6 images scored with technical" in r.stdout

    lines = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    by_name = {x["file"]: x for x in lines}
    assert by_name["astronaut.png"]["score"] == 100.0
    assert by_name["black.png"]["score"] == 10.0 and by_name["one.png"]["score"] == 0.0
    assert by_name["corrupt.png"]["score"] is None and by_name["corrupt.png"]["unscored"]
    with (out / "report.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    page = (out / "report.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 5  # every readable image has a thumbnail


def test_one_source_is_not_enough_by_default(folder, tmp_path):
    r = run("score", str(folder / "coffee.jpg"), "--sources", "technical",
            "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "unscored: 1 of 2 required sources scored (technical)" in r.stdout


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


def test_demo_with_another_samples_folder(folder, tmp_path):
    r = run("demo", "--samples", str(folder), "--out", str(tmp_path / "o"), "--min-sources", "1",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Scoring 6 sample images" in r.stdout and (tmp_path / "o" / "report.html").exists()


def test_samples_are_small_and_committed():
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(files) >= 6 and sum(p.stat().st_size for p in files) < 300_000
    for p in files:
        with PILImage.open(p) as img:
            assert max(img.size) <= 512 and p.stat().st_size <= 40_000


def test_demo_scores_the_samples_offline(tmp_path):
    r = run("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "7 of 7 images scored with nudenet, technical" in r.stdout
    table = rows(r.stdout.split("\n\n")[1])
    score = {name: float(line.split()[1]) for name, line in table.items()}
    for photo in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        assert score[photo] == 100.0, table[photo]
        assert "nudenet,technical" in table[photo]
    assert score["broken_black.png"] <= 10
    assert score["broken_blurred.jpg"] < 100 and score["broken_washed_out.jpg"] < 100
    assert "black frame" in table["broken_black.png"]
    assert len((tmp_path / "demo" / "report.jsonl").read_text().splitlines()) == 7


# -- in process: the pipeline `score` runs, with a second source defined here -------------

class Brightness(Source):
    """A tiny real source for the test: mean brightness as `appeal` (or a wild fixed value)."""

    name: ClassVar[str] = "brightness"
    kind: ClassVar[str] = "tagger"
    provides: ClassVar[tuple[str, ...]] = ("appeal", "overall")

    def __init__(self, offset: float = 0.0, **kw) -> None:
        super().__init__(**kw)
        self.offset = offset

    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        def one(_: int, img: Image):
            if img.shape[0] < 4:
                raise ValueError("too small to judge")
            v = float(np.nanmean(img)) * 100 + self.offset
            return self.card(axes={"appeal": v, "overall": v})
        return self.each(images, ctx, one)


def test_score_paths_with_two_voting_sources_and_an_outlier(folder):
    paths = sorted(folder.glob("*.png"))
    sources = [Brightness(label="b1"), Brightness(label="b2", offset=2),
               Brightness(label="wild", offset=60), TechnicalCheck(),
               Unavailable("wd", "cannot start: no model file")]
    entries = score_paths(paths, sources, AggregateSettings(), batch=2)
    got = {e.name: e.verdict for e in entries}
    astro = got["astronaut.png"]
    assert astro.used == ["b1", "b2", "technical"]
    assert astro.dropped["wild"].startswith("outlier on appeal")
    assert astro.dropped["wd"] == "cannot start: no model file"
    mean = float(np.asarray(PILImage.open(folder / "astronaut.png")).mean()) / 255 * 100
    assert astro.axes["appeal"] == pytest.approx(mean + 1, abs=0.01)
    assert got["one.png"].dropped["b1"] == "ValueError: too small to judge"
    assert got["one.png"].unscored and "technical" in got["one.png"].unscored
    assert got["corrupt.png"].unscored.startswith("corrupt.png: cannot read image")
    assert [e.name for e in entries] == [p.name for p in paths]


class Broken(Brightness):
    """Breaks the source contract: one card too few for the batch."""

    name: ClassVar[str] = "broken"

    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        return super()._score(images, ctx)[:-1]


def test_a_source_breaking_its_contract_abstains(folder):
    paths = [folder / "astronaut.png", folder / "coffee.jpg"]
    entries = score_paths(paths, [Brightness(), Broken(), TechnicalCheck()], AggregateSettings())
    for e in entries:
        assert e.verdict.scored and e.verdict.used == ["brightness", "technical"]
        assert e.verdict.dropped["broken"].startswith("failed: RuntimeError: broken returned 1")


def test_interrupt_still_writes_the_report(tmp_path):
    """Ctrl-C after the first image: the run stops after the image in hand. 40 distinct
    (never served from the cache) 4-Mpx photos take the CLI seconds each handful, so the
    signal always lands long before the last one, however loaded the machine."""
    many = tmp_path / "many"
    many.mkdir()
    photo = io.BytesIO()
    PILImage.fromarray(skimage.data.coffee()).resize((2400, 1600)).save(photo, "JPEG",
                                                                        quality=90)
    for i in range(40):  # the same pixels; bytes after the image's end make each distinct
        (many / f"img{i:02}.jpg").write_bytes(photo.getvalue() + b"%d" % i)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(many), "--sources", "technical",
         "--batch", "1", "--min-sources", "1", "--comfy", "off", "--out", str(tmp_path / "o")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("scored 1/40")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "img00.jpg" in out
    assert "interrupted: reporting the" in err
    done = (tmp_path / "o" / "report.jsonl").read_text().splitlines()
    assert 1 <= len(done) < 40


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


def test_the_judge_reads_what_earlier_sources_found(folder, tmp_path, fakeapi, fake_key):
    """Sources run in order and later ones see earlier cards: the judge's prompt carries the
    technical check's findings, and its vote reaches the verdict."""
    two = tmp_path / "two"
    two.mkdir()
    for name in ("black.png", "coffee.jpg"):
        (two / name).write_bytes((folder / name).read_bytes())
    out = tmp_path / "out"
    r = run("score", str(two), "--sources", "nudenet,technical,judge",
            "--option", f"judge.base_url={fakeapi.url}", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prompts = [json.dumps(b["messages"], ensure_ascii=False) for b in fakeapi.bodies()]
    assert len(prompts) == 2
    assert any("[technical] issues: black frame" in p for p in prompts)
    report = [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]
    assert all("grok" in v["used"] for v in report)  # the default model is a Grok one
    assert fake_key not in r.stdout + r.stderr + (out / "report.jsonl").read_text()
