"""Confidence tells the truth (issue K), on the real CLI with a logprob VLM served by the
fault server on 127.0.0.1: the VLM's own confidence (the spread of its level distribution)
enters the verdict's, and a single source never yields 1.00."""

from __future__ import annotations

import json
import math

import pytest
import skimage.data
from helpers.run_cli import run
from PIL import Image as PILImage

pytest_plugins = ["helpers.fixtures_http"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    PILImage.fromarray(skimage.data.astronaut()[::4, ::4]).save(d / "astronaut.png")
    return d


def score(folder, tmp_path, fakeapi, out: str) -> dict:
    r = run("score", str(folder), "--sources", "technical,vlm-http",
            "--option", f"vlm-http.base_url={fakeapi.url}", "--option", "vlm-http.model=fake-vlm",
            "--option", "vlm-http.method=logprob", "--option", "vlm-http.comment=false",
            "--out", str(tmp_path / out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (row,) = map(json.loads, (tmp_path / out / "report.jsonl").read_text().splitlines())
    return row


def test_the_vlms_own_confidence_enters_the_verdict(folder, tmp_path, fakeapi, fake_key):
    fakeapi.script(default={"kind": "logprobs", "top": {"3": math.log(0.4),
                                                        "8": math.log(0.6)}})
    unsure = score(folder, tmp_path, fakeapi, "unsure")
    (card,) = [c for c in unsure["cards"] if c["kind"] == "vlm"]
    assert 0 < card["confidence"] < 0.7  # a two-peaked answer: the VLM is unsure
    # one voter on every axis: agreement 0.5 (nobody confirmed it) · coverage 1 · its own
    for axis in ("erotic", "composition", "appeal", "typeset", "overall"):
        assert unsure["confidences"][axis] == pytest.approx(0.5 * card["confidence"])
    assert unsure["confidence"] == pytest.approx(0.5 * card["confidence"], abs=1e-3)

    fakeapi.script(default={"kind": "logprobs", "top": {"8": 0.0}})  # all mass on one level
    sure = score(folder, tmp_path, fakeapi, "sure")
    (card,) = [c for c in sure["cards"] if c["kind"] == "vlm"]
    assert card["confidence"] == pytest.approx(1.0)
    assert sure["confidence"] == pytest.approx(0.5)  # a single source never yields 1.00
    assert sure["confidence"] > unsure["confidence"]
