"""One report row (`scoring.report.entries`): the sample verdicts are what every view shows,
and the one-line summary a node or a preview prints."""

from __future__ import annotations

import pytest

from scoring.report import summary


def test_verdicts_are_what_the_report_shows(entries):
    good = entries[0].verdict
    assert good.score == pytest.approx(78 - 15)
    assert good.dropped == {"joy": "outlier on composition (12 vs median 79)"}
    assert not entries[1].verdict.scored
    # erotic (70, 64): 0.85 · 2/4; composition (80, 79; 12 dropped): 0.975 · 2/3; overall:
    # qwen alone, 0.5 (one voice) · 1/3; appeal and typeset: every source providing them
    # answered without them → missing, counting 0
    assert good.confidence == pytest.approx((0.85 * 2 / 4 + 0.975 * 2 / 3 + 0.5 / 3) / 5)
    assert set(good.missing) == {"appeal", "typeset"}


def test_summary_line(entries):
    good, unscored = (e.verdict for e in entries)
    assert summary(good) == ("63.0 (erotic 67, composition 80, conf 0.25) | blurry (ratio 0.005 "
                             "< 0.01); joy: outlier on composition (12 vs median 79)")
    assert summary(unscored).startswith("unscored: 1 of 2 required sources scored (nudenet)")
