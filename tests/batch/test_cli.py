"""`python -m scoring` as a real subprocess on real files, and the pipeline it runs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import skimage.data
from helpers.run_cli import REPO, run
from PIL import Image as PILImage

from scoring.batch.score_cmd import score_paths
from scoring.core.cards import Sheet
from scoring.core.images import Image
from scoring.ensemble.aggregate import AggregateSettings
from scoring.sources import ScoreContext, Source, Unavailable
from scoring.sources.technical import TechnicalCheck

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
