"""The score cache (`scoring.batch.resume_cache`) with the batch runner on real files and real
sources: what is cached is reused, what changed is rescored — and on the real CLI, a second
run over 120 ComfyUI PNGs reuses every score, and a run interrupted by Ctrl-C resumes without
duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.counting import Counting, random_pngs, runner
from helpers.overnight import SOURCES, cached, images, report
from helpers.run_cli import REPO, run
from PIL import Image as PILImage

from scoring.batch.resume_cache import ScoreCache, cacheable, source_key
from scoring.batch.runner import Planned, Runner, closing_line
from scoring.core.cards import ScoreCard
from scoring.ensemble.aggregate import AggregateSettings
from scoring.sources.handles import identity
from scoring.sources.technical import TechnicalCheck


@pytest.fixture
def folder(tmp_path) -> Path:
    return random_pngs(tmp_path / "in")


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


def test_resume_reuses_every_score(tmp_path):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 120)
    t0 = time.perf_counter()
    first = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                cwd=tmp_path)
    t1 = time.perf_counter()
    assert first.returncode == 0, first.stderr
    assert "120 images: 120 scored, 0 reused from the cache" in first.stdout
    stored = cached(out, "SELECT image, source, created FROM cards ORDER BY 1, 2")
    assert len(stored) == 240  # 120 images × 2 sources

    second = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                 cwd=tmp_path)
    t2 = time.perf_counter()
    assert second.returncode == 0, second.stderr
    assert "120 images: 0 scored, 120 reused from the cache" in second.stdout
    rows = report(out)
    assert len(rows) == 120 and len({r["file"] for r in rows}) == 120
    assert {r["reused"] for r in rows} == {"cache"}
    assert rows[0]["comfy"]["seed"] == 1000 and rows[0]["comfy"]["checkpoint"] == "tiny.ckpt"
    # the sources did not run again: not one card was written by the second run
    assert cached(out, "SELECT image, source, created FROM cards ORDER BY 1, 2") == stored
    first_rows = {r["file"]: r["score"] for r in report(out)}
    print(f"\nresume over 120 images: second run {t2 - t1:.2f}s / first {t1 - t0:.2f}s "
          f"= {(t2 - t1) / (t1 - t0):.2f}")

    third = run("score", str(folder), *SOURCES, "--comfy", "off", "--rescore", "--out",
                str(out), cwd=tmp_path)
    assert "120 images: 120 scored, 0 reused" in third.stdout
    assert {r["file"]: r["score"] for r in report(out)} == first_rows


def test_an_interrupted_run_resumes_without_duplicates(tmp_path):
    folder, out = tmp_path / "night", tmp_path / "out"
    images(folder, 40)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoring", "score", str(folder), *SOURCES, "--batch", "1",
         "--comfy", "off", "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not proc.stderr.readline().startswith("scored 3/40"):
            pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: reporting the" in err
    done = len(report(out))
    assert 3 <= done < 40
    assert cached(out, "SELECT COUNT(DISTINCT image) FROM cards")[0][0] == done

    again = run("score", str(folder), *SOURCES, "--comfy", "off", "--out", str(out),
                cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"40 images: {40 - done} scored, {done} reused from the cache" in again.stdout
    rows = report(out)
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in folder.iterdir())
    assert cached(out, "SELECT COUNT(*) FROM cards")[0][0] == 80
