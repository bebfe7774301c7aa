"""The judge's cache and cost log in a user/saiten folder that is full or read-only (issue
N.8), on a real 200 KiB tmpfs: the judge still scores every image from the fake server on
127.0.0.1, and says that its cache and cost log are off, and why."""

from __future__ import annotations

import numpy as np
from helpers.disk import fill, remount, tmpfs

from scoring.core.cards import ScoreCard
from scoring.sources import ScoreContext, create

pytest_plugins = ["helpers.fixtures_http"]

PRIOR = [[ScoreCard(source="wd", kind="tagger", tags={"1girl": 0.9, f"t{i}": 0.8},
                    extras={"rating": {"explicit": 0.8}})] for i in range(3)]
IMAGES = [np.full((8, 8, 3), 0.5, np.float32)] * 3



def run(fakeapi, saiten):
    j = create("judge", base_url=fakeapi.url, model="fake-judge", timeout=5,
               cache=saiten / "judge_cache.sqlite", cost_log=saiten / "judge_cost.jsonl")
    return j.score(IMAGES, ScoreContext(prior=PRIOR))


def test_a_full_user_folder_turns_the_cache_and_log_off_never_the_judge(fakeapi, tmp_path):
    with tmpfs(tmp_path / "user", "200k") as user:
        saiten = user / "saiten"
        saiten.mkdir()
        fill(user)
        out = run(fakeapi, saiten)
        assert all(c[0].ok for c in out) and len(fakeapi.requests()) == 3
        assert "no space left on device" in out.cost and "cost log off" in out.cost
        assert "judge cache" in out.describe and "not caching" in out.describe


def test_a_read_only_user_folder_too(fakeapi, tmp_path):
    with tmpfs(tmp_path / "user", "200k") as user:
        (user / "saiten").mkdir()
        remount(user, ro=True)
        try:
            out = run(fakeapi, user / "saiten")
        finally:
            remount(user, ro=False)
        assert all(c[0].ok for c in out)
        assert "read-only file system" in out.cost
        assert "unusable" in out.describe and "read-only" in out.describe
