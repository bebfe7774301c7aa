"""A chaos run (issue N.9): the real CLI over a few hundred files with faults at random —
a VLM server and a judge (its key bound, reached through a proxy) answering with errors,
resets, huge and endless bodies, out-of-range numbers and the key echoed in every encoding;
corrupt, cut-short, huge-claiming and many-framed files; a report folder on a tmpfs that
fills. Every image is accounted for exactly once — scored, or unscored with its reason —
nothing is scored from garbage, no key survives, and the report, the CSV and the cache
agree (a run after the disk is grown resumes; one more run reuses everything and reports
the same). Deterministic: the files come from a seeded generator, each server fault is a
pure function of the seed and the request."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.disk import remount, tmpfs
from helpers.fakeapi import FAKE_KEY
from helpers.hostile_files import CUTS, big_png, cut, many_frames_gif, photo
from PIL import Image

from scoring.core.images import MAX_FRAMES
from scoring.remote.echo import echoes

pytestmark = pytest.mark.slow
pytest_plugins = ["helpers.fixtures_http"]

REPO = Path(__file__).resolve().parents[2]
SEED = 20261207
PHOTOS = 250
FAULTS = {"ok": 30, "status": 1, "reset": 1, "huge": 1, "range": 2, "echo": 2, "junk": 1,
          "endless": 1}


def corpus(folder: Path) -> dict[str, list[str]]:
    """The files, and the report rows each must give (a frame per row for an animated
    file, its unread frames in one more row)."""
    rng = random.Random(SEED)
    folder.mkdir()
    pictures = [photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket")]
    expect: dict[str, list[str]] = {}
    for i in range(PHOTOS):
        src = pictures[i % 4]
        side = rng.randint(64, 128)
        y, x = rng.randint(0, src.shape[0] - side), rng.randint(0, src.shape[1] - side)
        tile = src[y:y + side, x:x + side][:, :: rng.choice((1, -1))]
        name = f"p{i:03}.{rng.choice(('png', 'jpg', 'webp'))}"
        Image.fromarray(np.ascontiguousarray(tile)).save(folder / name, quality=90)
        expect[name] = [name]
    for i in range(12):
        name = f"corrupt{i:02}.{rng.choice(('png', 'jpg'))}"
        magic = b"\x89PNG\r\n\x1a\n" if name.endswith("png") else b"\xff\xd8\xff\xe0"
        (folder / name).write_bytes(magic + rng.randbytes(rng.randint(10, 4000)))
        expect[name] = [name]
    kinds = list(CUTS)
    for i in range(12):
        kind = kinds[i % len(kinds)]
        name = f"cut{i:02}.{CUTS[kind][1].lower()}"
        cut(folder / name, pictures[i % 4], kind, rng.choice((0.05, 0.3, 0.7)))
        expect[name] = [name]
    for i in range(2):
        big_png(folder / f"huge{i}.png", 13000, 9000 + i)
        expect[f"huge{i}.png"] = [f"huge{i}.png"]
    big_png(folder / "bomb.png", 20000, 20000, bits=1)
    expect["bomb.png"] = ["bomb.png"]
    many_frames_gif(folder / "anim.gif", frames=40, side=64)
    expect["anim.gif"] = [f"anim.gif#{k}" for k in range(MAX_FRAMES)] + \
        [f"anim.gif#{MAX_FRAMES}-39"]
    (folder / "empty.png").write_bytes(b"")
    expect["empty.png"] = ["empty.png"]
    (folder / "notes.txt").write_text("not an image")
    return expect


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]


def texts(row: dict) -> list[str]:
    """Every text a row carries from a source (what a server could have put there)."""
    found = [row.get("comment") or "", row.get("unscored") or ""]
    for c in row["cards"]:
        found += [c.get("comment") or "", c.get("raw") or "", c.get("abstained") or "",
                  *c.get("reasons", [])]
        found += [json.dumps(c.get("extras", {}), ensure_ascii=False)]
    return [t for t in found if t]


def test_chaos_run(tmp_path, fake_server):
    from scoring.remote import breaker

    breaker.reset()
    images = tmp_path / "images"
    expect = corpus(images)
    fake_server.script(default={"kind": "chaos", "seed": SEED, "weights": FAULTS})
    config = tmp_path / "config"
    config.mkdir()
    (config / "keys.toml").write_text('[hosts."judge.example"]\nenv = "XAI_API_KEY"\n'
                                      "http = true\n")
    proxy = f"http://127.0.0.1:{fake_server.port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "XAI_API_KEY": FAKE_KEY,
           "SAITEN_CONFIG_DIR": str(config), "SAITEN_HTTP_COOLDOWN": "0.2",
           "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}
    args = ["score", str(images), "--sources", "technical,vlm-http,judge",
            "--option", f"vlm-http.base_url={fake_server.url}", "--option",
            "vlm-http.model=fake-vlm", "--option", "vlm-http.timeout=3",
            "--option", "vlm-http.method=generate", "--option", "vlm-http.max_attempts=1",
            "--option", "judge.base_url=http://judge.example/v1", "--option",
            "judge.timeout=3", "--option", "judge.backoff=0.01", "--option",
            "judge.max_retries=1", "--min-sources", "2", "--comfy", "off", "--batch", "16"]
    with tmpfs(tmp_path / "out", "1m") as out:
        full = cli([*args, "--out", str(out)], tmp_path, env)
        assert full.returncode not in (0, 130), full.stdout[-2000:] + full.stderr[-2000:]
        last = full.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"error: cannot write \S+ in {re.escape(str(out))}\S*: no space "
                            r"left on device \(.* free of 1\.0 MB\)", last), full.stderr[-3000:]
        assert "Traceback" not in full.stderr
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)
        done = cli([*args, "--out", str(out)], tmp_path, env)
        assert done.returncode == 0, done.stderr[-3000:]
        first = rows(out)
        again = cli([*args, "--out", str(out)], tmp_path, env)
        assert again.returncode == 0, again.stderr[-3000:]
        second = rows(out)
        with (out / "report.csv").open(newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
        cache = sqlite3.connect(out / "scores.sqlite")
        cached = cache.execute("SELECT COUNT(DISTINCT image) FROM cards").fetchone()[0]
        cache.close()
        leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
        everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
        remount(out, ro=False)

    names = [r["file"] for r in first]
    wanted = [n for file in expect.values() for n in file]
    assert sorted(names) == sorted(wanted) and len(set(names)) == len(names)
    scored = [r for r in first if r["score"] is not None]
    unscored = [r for r in first if r["score"] is None]
    assert all(r["unscored"] and r["unscored"].strip() for r in unscored)
    assert all(0 <= r["score"] <= 100 and not r["unscored"] for r in scored)
    assert len(scored) >= PHOTOS // 2  # most photos got through the chaos
    by_name = {r["file"]: r for r in first}
    for name in ("corrupt00.png", "empty.png", "huge0.png", "bomb.png"):
        assert by_name.get(name, by_name.get(name.replace(".png", ".jpg")))["unscored"]
    for i in range(12):
        row = next(r for r in first if r["file"].startswith(f"cut{i:02}."))
        assert "cut short" in row["unscored"], row["unscored"]
    assert "skipped" in by_name[f"anim.gif#{MAX_FRAMES}-39"]["unscored"]

    for r in first:  # nothing earned from garbage, no key in any encoding
        for c in r["cards"]:
            assert all(0 <= v <= 100 for v in c["axes"].values()), c
        for t in texts(r):
            assert not echoes(t, [FAKE_KEY]), t[:200]
    assert FAKE_KEY.encode() not in everything and FAKE_KEY[4:20].encode() not in everything
    assert sum("withheld" in t for r in first for t in texts(r)) >= 1  # echoes did come

    # the report, the CSV and the cache agree; a third run reuses what is cached, asks the
    # servers again what they refused (abstentions are never cached) and reports the same
    assert [(r["name"], r["score"]) for r in table] == \
        [(r["file"], "" if r["score"] is None else f"{r['score']:.1f}") for r in second]
    assert {r["file"]: r["score"] for r in second} == {r["file"]: r["score"] for r in first}
    assert f"{len(scored)} of {len(first)} images scored" in again.stdout
    reused = int(re.search(r"(\d+) reused from the cache", again.stdout).group(1))
    assert reused >= 1  # what every source answered came back from the cache, unchanged
    assert cached >= len(scored) and leftovers == []
