"""The preview draws each region in its status colour with a short label, and `publish_of`
reads an image's verdict from its cards (unchecked when the check abstained or never ran)."""

from __future__ import annotations

import numpy as np

from scoring.core.cards import ScoreCard
from scoring.publish import Cover, Region, judge, rule_for
from scoring.publish.preview import COLOURS, NEEDS, draw, label
from scoring.publish.rules import OK, TOO_FINE, UNCHECKED, publish_of, unchecked


def _verdict():
    regions = [Region((20, 30, 120, 110), "pussy", 0.9), Region((150, 40, 230, 100), "penis",
                                                                 0.8),
               Region((60, 150, 200, 230), "pussy", 0.7)]
    covers = [Cover("mosaic", 12, (0, 0), 1.0, 0.8), Cover("mosaic", 3, (1, 1), 1.0, 0.8),
              Cover("nothing")]
    return judge(regions, covers, 1001, 700, rule_for("1/100")).to_dict()


def test_regions_drawn_in_their_status_colour():
    img = np.full((260, 260, 3), 128, np.uint8)
    v = _verdict()
    out = draw(img, v)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[70, 20]) == COLOURS[OK]          # left edge of R1
    assert tuple(out[70, 150]) == COLOURS[TOO_FINE]   # left edge of R2
    assert tuple(out[229, 130]) == NEEDS              # bottom edge of R3
    assert tuple(out[200, 130]) == (128, 128, 128)    # inside stays as it was
    assert np.array_equal(img, np.full((260, 260, 3), 128, np.uint8))  # a copy
    assert [label(r) for r in v["regions"]] == ["R1 ok 12px", "R2 3px<11", "R3 none"]


def test_publish_of_reads_the_last_check():
    v = _verdict()
    ok = ScoreCard("censor", "detector", extras={"publish": v})
    other = ScoreCard("wd", "tagger", axes={"erotic": 80})
    assert publish_of([other, ok]) is v
    gone = ScoreCard.abstain("censor", "detector", "model missing",
                             extras={"publish": unchecked("model missing")})
    assert publish_of([ok, gone])["status"] == UNCHECKED
    bare = ScoreCard.abstain("censor", "detector", "cannot start")
    assert publish_of([bare]) == unchecked("cannot start")
    assert publish_of([other])["summary"] == "unchecked: no publish check ran"
