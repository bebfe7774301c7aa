"""`python -m scoring score` and `demo` (`scoring.cli.score`). In process: the sources
they make from their options (a GGUF paired by name as the VLM Loader pairs it) and the
pipeline they run (`score_paths`: outliers dropped, a source breaking its contract
abstains). As real subprocesses on real files: the table and the report (one row per file,
unreadable ones unscored with the reason), one source not enough by default, the report's
status decided by `--pass-score`, the demo scoring the embedded samples offline, a
calibration changing each verdict as the fit says, and sources run in order, each seeing the
cards of those before it (the judge reads the technical check's findings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from helpers.reports import page_data
from helpers.run_cli import run
from PIL import Image as PILImage

from scoring.cli.score import make_sources, score_paths
from scoring.core.cards import Sheet
from scoring.core.images import Image
from scoring.ensemble.aggregate import AggregateSettings
from scoring.ensemble.calibrate import Calibration, SourceFit, save_calibrations
from scoring.ensemble.profile import load_profile
from scoring.sources import ScoreContext, Source, Unavailable
from scoring.sources.technical import TechnicalCheck

pytest_plugins = ["helpers.fixtures_http", "helpers.photos"]  # fakeapi; `images`


# -- in process: the sources it makes, the pipeline it runs (a second source defined here) --
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
               Brightness(label="wild", offset=40), TechnicalCheck(),
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


# -- the commands as real subprocesses ----------------------------------------------------
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


def test_demo_with_another_samples_folder(folder, tmp_path):
    r = run("demo", "--samples", str(folder), "--out", str(tmp_path / "o"), "--min-sources", "1",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Scoring 6 sample images" in r.stdout and (tmp_path / "o" / "report.html").exists()


def test_the_report_passes_what_the_pass_score_passes(tmp_path):
    """`--pass-score 75`: the report's status is decided by 75 (the filter's rule), so the
    blurred sample (65) is rejected and the washed-out one (80) passed — never a fixed 60."""
    out = tmp_path / "o"
    r = run("demo", "--out", str(out), "--pass-score", "75", "--comfy", "off", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with (out / "report.csv").open(encoding="utf-8", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert {row["rule"] for row in rows.values()} == {"overall ≥ 75"}
    for row in rows.values():
        score = float(row["score"]) if row["score"] else None
        expect = "unscored" if score is None else "passed" if score >= 75 else "rejected"
        assert row["status"] == expect, row
    assert rows["broken_blurred.jpg"]["status"] == "rejected"
    assert 60 <= float(rows["broken_blurred.jpg"]["score"]) < 75
    assert rows["broken_washed_out.jpg"]["status"] == "passed"
    passed = sum(row["status"] == "passed" for row in rows.values())
    page = page_data(out / "report.html")  # what the page says: N passed (overall ≥ 75)
    assert [r["rule"] for r in page["rules"]] == ["overall ≥ 75"]
    assert sum(e["st"] == "passed" for e in page["entries"]) == passed
    r = run("demo", "--out", str(tmp_path / "p"), "--pass-score", "lots", cwd=tmp_path)
    assert r.returncode == 2 and "--pass-score" in r.stderr


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


def _report(folder: Path) -> dict[str, dict]:
    lines = (folder / "report.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["file"]: row for row in map(json.loads, lines)}


def test_cli_calibration_changes_the_verdict_as_the_fit_says(images, tmp_path):
    plain = tmp_path / "plain"
    r = run("score", str(images), "--out", str(plain), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cal = Calibration("nudenet", "erotic", slope=0.5, intercept=40.0)
    path = save_calibrations(tmp_path / "cal.json", [SourceFit("nudenet", "erotic", 3, 0.9, cal)])
    assert load_profile(path).calibrations == [cal]
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
