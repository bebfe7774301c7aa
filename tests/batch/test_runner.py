"""The batch runner (`scoring.batch.runner`) on real files with real sources: an unreadable
file is an unscored row, never a crash, and a verdict that Saiten Save Image wrote into a PNG
is read back when the sources match, scored again when they do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.counting import Counting, random_pngs, runner
from PIL import Image as PILImage

from scoring.batch.resume_cache import ScoreCache, source_key
from scoring.batch.runner import Planned, Runner
from scoring.core.rubric import Rubric
from scoring.ensemble.aggregate import AggregateSettings
from scoring.report import save_png


@pytest.fixture
def folder(tmp_path) -> Path:
    return random_pngs(tmp_path / "in")


def test_verdicts_saved_in_pngs_are_read_back_when_the_sources_match(folder, tmp_path):
    paths = sorted(folder.iterdir())
    with ScoreCache(tmp_path / "a") as cache:
        verdicts = runner(cache, Counting()).batch(paths[:2])
    saved = []
    for i, e in enumerate(verdicts):  # what Saiten Save Image writes
        pixels = np.asarray(PILImage.open(paths[i]), np.float32) / 255
        saved.append(save_png(tmp_path / f"saiten_{i}.png", pixels, e.verdict))
    with ScoreCache(tmp_path / "b") as cache:
        source = Counting()
        r = runner(cache, source)
        back = r.batch(saved)
        assert source.seen == 0 and r.counts.from_png == 2
        assert [e.verdict.score for e in back] == pytest.approx(
            [e.verdict.score for e in verdicts], abs=0.01)
        assert {e.origin for e in back} == {"png"}
        other = Counting(label="other")
        plans = [Planned(other, source_key("counting", {"label": "other"}, "r"))]
        r2 = Runner(plans, AggregateSettings(min_sources=1), cache=cache)
        r2.batch(saved)  # different sources: scored again
        assert other.seen == 2 and r2.counts.from_png == 0


def test_unreadable_files_are_rows_not_crashes(folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n nope")
    with ScoreCache(tmp_path / "out") as cache:
        r = runner(cache, Counting())
        entries = r.batch([folder / "broken.png", folder / "missing.png", folder / "0.png"])
    assert entries[0].verdict.unscored.startswith("broken.png: cannot read image")
    assert entries[1].verdict.unscored.startswith("missing.png: cannot read")
    assert entries[2].verdict.scored and r.counts.unreadable == 1
    assert Rubric.default().to_toml()  # the CLI keys the rubric by its TOML text


class Sizes(Counting):
    """A Counting source that notes the decoded bytes of every call's images."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls: list[int] = []

    def _score(self, images, ctx):
        self.calls.append(sum(im.nbytes for im in images))
        return super()._score(images, ctx)


def test_a_batch_is_bounded_by_decoded_bytes_and_frames_come_one_at_a_time(tmp_path):
    """Sources run whenever the frames waiting reach `max_bytes`: a batch of five 48² files
    and a 20-frame GIF never hands a source more than that (plus the frame that crossed
    it); the frames past MAX_FRAMES are one row that says so."""
    from helpers.hostile_files import many_frames_gif

    from scoring.core.images import MAX_FRAMES

    folder = random_pngs(tmp_path / "in")
    many_frames_gif(folder / "anim.gif", frames=MAX_FRAMES + 4, side=48)
    one = 48 * 48 * 3 * 4
    source = Sizes()
    with ScoreCache(tmp_path / "out") as cache:
        r = runner(cache, source, max_bytes=3 * one)
        entries = r.batch(sorted(folder.iterdir()))
    assert source.seen == 5 + MAX_FRAMES and max(source.calls) <= 3 * one
    assert len(source.calls) == -(-(5 + MAX_FRAMES) // 3)
    names = [e.name for e in entries]
    assert names[5:] == [*(f"anim.gif#{k}" for k in range(MAX_FRAMES)),
                                       f"anim.gif#{MAX_FRAMES}-{MAX_FRAMES + 3}"]
    assert entries[-1].verdict.unscored.startswith(
        f"anim.gif: {MAX_FRAMES + 4} frames; the first {MAX_FRAMES} are scored, 4 skipped")
    assert all(e.verdict.scored for e in entries if e.name != f"anim.gif#{MAX_FRAMES}-"
               f"{MAX_FRAMES + 3}")


def test_a_file_cut_short_is_unscored_and_not_sent_to_the_sources(tmp_path):
    from helpers.hostile_files import cut, photo

    for kind in ("grey (baseline JPEG)", "a colour of the picture (palette PNG)"):
        path = cut(tmp_path / f"cut.{'jpg' if 'JPEG' in kind else 'png'}", photo(), kind, 0.4)
        source = Counting()
        with ScoreCache(tmp_path / "out") as cache:
            (entry,) = runner(cache, source).batch([path])
        assert source.seen == 0 and entry.thumb  # the decoded part is shown, not scored
        assert entry.verdict.unscored.startswith(f"{path.name} is cut short: only part of it "
                                                 "decoded")
