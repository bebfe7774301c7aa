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
