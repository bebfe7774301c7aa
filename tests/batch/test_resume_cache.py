"""The score cache and the batch runner on real files and real sources: what is cached
is reused, what changed is rescored, verdicts saved by Saiten Save Image are read back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image as PILImage

from scoring.batch.resume_cache import ScoreCache, cacheable, source_key
from scoring.batch.runner import Planned, Runner, closing_line
from scoring.core.cards import ScoreCard
from scoring.core.images import Image
from scoring.core.rubric import Rubric
from scoring.ensemble.aggregate import AggregateSettings
from scoring.report import save_png
from scoring.sources import ScoreContext, Source
from scoring.sources.handles import identity
from scoring.sources.technical import TechnicalCheck


class Counting(Source):
    """Scores appeal/overall from the mean brightness and counts the images it saw."""

    name: ClassVar[str] = "counting"
    kind: ClassVar[str] = "vlm"
    provides: ClassVar[tuple[str, ...]] = ("appeal", "overall")

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.seen = 0
        self.loads = 0
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        self.loads += not self._loaded
        self._loaded = True

    def unload(self) -> None:
        self._loaded = False

    def _score(self, images: list[Image], ctx: ScoreContext):
        self.seen += len(images)
        v = [float(np.nanmean(im)) * 100 for im in images]
        return [[self.card(axes={"appeal": x, "overall": x})] for x in v]


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        PILImage.fromarray(rng.integers(0, 255, (48, 48, 3), np.uint8)).save(d / f"{i}.png")
    return d


def runner(cache, source, **kw) -> Runner:
    plans = [Planned(source, source_key("counting", {}, "r")),
             Planned(TechnicalCheck(), source_key("technical", {}, "r", ["counting"]))]
    return Runner(plans, AggregateSettings(), cache=cache, **kw)


def test_source_key():
    def wd(**build):
        return identity("wd", build, results_only=True)

    base = source_key(wd(model_path="/m", a=1), {"repeats": 1}, "rubric")
    assert base == source_key(wd(a=1, model_path=Path("/m")), {"repeats": 1}, "rubric")
    assert base.startswith("wd:")
    others = {source_key(wd(model_path="/n", a=1), {"repeats": 1}, "rubric"),
              source_key(wd(model_path="/m", a=1), {"repeats": 2}, "rubric"),
              source_key(wd(model_path="/m", a=1), {"repeats": 1}, "rubric 2"),
              source_key(wd(model_path="/m", a=1), {"repeats": 1}, "rubric", ["x"])}
    assert base not in others and len(others) == 4


def test_cache_round_trip_and_what_is_kept(tmp_path):
    ok = ScoreCard(source="wd", kind="tagger", provides=("erotic",), axes={"erotic": 61.5},
                   tags={"桜": 0.9})
    gone = ScoreCard.abstain("vlm", "vlm", "server not answering")
    assert cacheable([ok, gone]) and not cacheable([gone]) and not cacheable([])
    with ScoreCache(tmp_path) as c:
        assert c.put_cards([("h1", "wd:1", [ok]), ("h1", "vlm:1", [gone])]) == 1
        c.put_image("h1", b"jpeg", {"seed": 5})
    with ScoreCache(tmp_path) as c:  # persisted
        assert c.cards("h1", "wd:1") == [ok] and c.cards("h1", "vlm:1") is None
        assert c.image("h1") == (b"jpeg", {"seed": 5}) and c.image("h2") is None
        assert c.stats() == {"cards": 1, "images": 1}
    db = sqlite3.connect(tmp_path / "scores.sqlite")  # a row we cannot read: score again
    db.execute("UPDATE cards SET cards='{broken'")
    db.commit()
    db.close()
    with ScoreCache(tmp_path) as c:
        assert c.cards("h1", "wd:1") is None


def test_second_run_reuses_everything_and_rescores_only_changes(folder, tmp_path):
    paths = sorted(folder.iterdir())
    with ScoreCache(tmp_path / "out") as cache:
        first = Counting()
        r1 = runner(cache, first)
        e1 = r1.batch(paths[:3]) + r1.batch(paths[3:])
        assert first.seen == 5 and r1.counts.scored == 5 and r1.counts.reused == 0
        assert all(e.verdict.scored for e in e1)

        again = Counting()
        r2 = runner(cache, again)
        e2 = r2.batch(paths)
        assert again.seen == 0 and again.loads == 0 and r2.counts.reused == 5
        assert [e.verdict.to_dict() for e in e2] == [e.verdict.to_dict() for e in e1]
        assert [e.thumb for e in e2] == [e.thumb for e in e1] and {e.origin for e in e2} == {
            "cache"}
        closing = closing_line(r2.counts, r2.beside, 5)
        assert closing == "5 images: 0 scored, 5 reused from the cache"

        PILImage.new("RGB", (48, 48), (250, 250, 250)).save(paths[1])  # changed content
        (folder / "copy.png").write_bytes(paths[0].read_bytes())  # same content, new name
        r3 = runner(cache, again)
        e3 = r3.batch(sorted(folder.iterdir()))
        assert again.seen == 1 and r3.counts.scored == 1 and r3.counts.reused == 5
        assert e3[1].verdict.axes["appeal"] > 95 > e1[1].verdict.axes["appeal"]

        fresh = Counting()
        r4 = runner(cache, fresh, rescore=True)
        r4.batch(paths)
        assert fresh.seen == 5 and r4.counts.reused == 0


def test_a_new_source_runs_alone_on_cached_images(folder, tmp_path):
    paths = sorted(folder.iterdir())
    with ScoreCache(tmp_path / "out") as cache:
        runner(cache, Counting()).batch(paths)
        tech = TechnicalCheck()
        extra = Counting(label="second")
        plans = [Planned(Counting(), source_key("counting", {}, "r")),
                 Planned(tech, source_key("technical", {}, "r", ["counting"])),
                 Planned(extra, source_key("counting", {"label": "second"}, "r", ["x"]))]
        r = Runner(plans, AggregateSettings(), cache=cache)
        entries = r.batch(paths)
        assert plans[0].source.seen == 0 and extra.seen == 5
        assert all("second" in e.verdict.used for e in entries)


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


def test_a_source_that_could_not_start_does_not_defeat_the_cache(folder, tmp_path):
    from scoring.sources import Unavailable

    paths = sorted(folder.iterdir())
    missing = Planned(Unavailable("wd", "cannot start: no model file"), None)
    with ScoreCache(tmp_path / "out") as cache:
        r1 = runner(cache, Counting())
        r1.plans.append(missing)
        r1.batch(paths)
        again = Counting()
        r2 = runner(cache, again)
        r2.plans.append(missing)
        entries = r2.batch(paths)
    assert again.seen == 0 and r2.counts.reused == 5 and r2.counts.scored == 0
    assert all(e.verdict.dropped["wd"] == "cannot start: no model file" for e in entries)


def test_key_for_a_created_source(tmp_path):
    """The key of a real source: build options (over its spec's defaults) and resolved run
    options; options that only change speed or placement are not in it."""
    from scoring.batch.resume_cache import key_for
    from scoring.sources import create

    nudenet = create("nudenet")
    base = key_for(nudenet, 1, "r")
    assert base == key_for(create("nudenet", batch_size=2, device="cpu"), 1, "r")
    assert base != key_for(create("nudenet", weight=0.9), 1, "r")  # cards carry weight
    assert base != key_for(create("nudenet", label="nn"), 1, "r")
    assert base != key_for(nudenet, 2, "r") != key_for(nudenet, 1, "r2")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    first = key_for(create("nudenet", model_path=str(model)), 1, "r")
    assert first == key_for(create("nudenet", model_path=str(model)), 1, "r")
    model.write_bytes(b"other weights")  # replaced in place: a new model
    assert first != key_for(create("nudenet", model_path=str(model)), 1, "r")


def test_frames_of_an_animated_file_are_cached_one_by_one(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    frames = [PILImage.new("RGB", (40, 40), (i * 80, 20, 200 - i * 60)) for i in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    with ScoreCache(tmp_path / "out") as cache:
        first = Counting()
        e1 = runner(cache, first).batch([d / "anim.gif"])
        assert [e.name for e in e1] == ["anim.gif#0", "anim.gif#1", "anim.gif#2"]
        assert first.seen == 3
        again = Counting()
        r = runner(cache, again)
        e2 = r.batch([d / "anim.gif"])
    assert again.seen == 0 and r.counts.reused == 3 and [e.name for e in e2] == [
        e.name for e in e1]
    assert [e.verdict.to_dict() for e in e2] == [e.verdict.to_dict() for e in e1]
