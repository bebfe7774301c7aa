"""The report tests' sample rows: one verdict with every kind of note (a check's finding, a
dropped outlier, a Japanese comment with markup) and one unscored."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import skimage.data

from scoring.core.cards import AXES, ScoreCard, Verdict
from scoring.core.images import as_rgb
from scoring.ensemble.aggregate import combine
from scoring.report import Entry, thumbnail


def verdicts() -> list[Verdict]:
    good = combine([
        ScoreCard(source="qwen", kind="vlm", provides=AXES, weight=1.0,
                  axes={"erotic": 70, "composition": 80, "overall": 78},
                  comment="構図が安定している。<b>"),
        ScoreCard(source="wd", kind="tagger", provides=("erotic",), axes={"erotic": 64}),
        ScoreCard(source="joy", kind="vlm", provides=AXES, axes={"composition": 12}),
        ScoreCard(source="judge", kind="judge", provides=AXES, axes={"composition": 79}),
        ScoreCard(source="technical", kind="check", provides=("overall",), penalty=15,
                  reasons=["blurry (ratio 0.005 < 0.01)"]),
    ])
    unscored = combine([ScoreCard(source="nudenet", kind="detector", axes={"erotic": 5}),
                        ScoreCard.abstain("technical", "check", "cannot read pixels")])
    return [good, unscored]


def sample_entries() -> list[Entry]:
    """The two rows: the scored one with a thumbnail and a name to quote, the unscored one."""
    good, unscored = verdicts()
    return [Entry("a,\"quoted\".png", good, thumbnail(as_rgb(skimage.data.astronaut()))),
            Entry("broken.png", unscored, None)]


def page_data(page: str | Path) -> dict[str, Any]:
    """The data a report page draws (its JSON block), from the page's text or file."""
    text = page.read_text(encoding="utf-8") if isinstance(page, Path) else page
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert m, "no data block in the page"
    return json.loads(m.group(1))
