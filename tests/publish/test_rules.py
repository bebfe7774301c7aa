"""The stores' mosaic rules and each image's verdict: the required block (with the round-up
at sizes like 1001 px), presets and custom rules, and every outcome on painted images."""

from __future__ import annotations

import pytest
from helpers.censor_images import mark, paint_bar, paint_blur, paint_mosaic, scene

from scoring.publish import (
    NEEDS_WORK,
    PUBLISHABLE,
    Cover,
    Region,
    Rule,
    judge,
    measure,
    rule_for,
)
from scoring.publish.rules import NEEDS_MOSAIC, OK, TOO_FINE


@pytest.mark.parametrize(("width", "height", "base", "strict"), [
    (256, 256, 4, 8), (400, 300, 4, 8), (401, 300, 5, 10), (512, 768, 8, 16),
    (1000, 700, 10, 20), (1001, 700, 11, 22), (700, 1001, 11, 22), (1024, 1024, 11, 22),
    (1344, 768, 14, 28), (2048, 1536, 21, 42), (4000, 3000, 40, 80),
])
def test_required_block(width, height, base, strict):
    assert rule_for("1/100").block_for(width, height) == base
    assert rule_for("strict x2").block_for(width, height) == strict
    assert rule_for("strict ×2").block_for(width, height) == strict


def test_custom_rule_and_bounds():
    r = rule_for("custom", divisor=50, minimum=8)
    assert (r.block_for(300, 200), r.block_for(1001, 10)) == (8, 21)
    assert rule_for("1/100", min_cover=0.5).min_cover == 0.5
    assert "⌈long side/100⌉" in rule_for("1/100").describe()
    with pytest.raises(ValueError, match="unknown mosaic rule"):
        rule_for("1/1000")
    with pytest.raises(ValueError, match="divisor"):
        Rule("bad", divisor=0)
    with pytest.raises(ValueError, match="min_cover"):
        Rule("bad", min_cover=0.0)


def _verdict(img, boxes, rule="1/100", labels=None):
    h, w = img.shape[:2]
    regions = [Region(b, (labels or ["pussy"] * len(boxes))[i], 0.9, "censor")
               for i, b in enumerate(boxes)]
    return judge(regions, [measure(img, b) for b in boxes], w, h, rule_for(rule))


BOX = (300, 400, 460, 540)


@pytest.mark.parametrize(("block", "rule", "status"), [
    (11, "1/100", OK), (12, "1/100", OK), (10, "1/100", TOO_FINE), (3, "1/100", TOO_FINE),
    (22, "strict x2", OK), (16, "strict x2", TOO_FINE),
])
def test_mosaic_against_the_rule_at_1001_px(block, rule, status):
    img = paint_mosaic(mark(scene(1001, 700), BOX), BOX, block)
    v = _verdict(img, [BOX], rule)
    assert v.needed == (11 if rule == "1/100" else 22)
    assert v.regions[0].status == status
    assert v.status == (PUBLISHABLE if status == OK else NEEDS_WORK)


def test_too_fine_says_what_was_found_and_needed():
    img = paint_mosaic(mark(scene(1001, 700), BOX), BOX, 3, (1, 2))
    v = _verdict(img, [BOX])
    assert v.summary() == ("needs work: R1 (pussy): mosaic too fine (3 px found, 11 px "
                           "needed)")


def test_bare_blur_and_partial_need_a_mosaic():
    base = mark(scene(1001, 700), BOX)
    bare = _verdict(base, [BOX])
    assert bare.regions[0].status == NEEDS_MOSAIC
    assert "needs a mosaic (nothing covers it; 11 px blocks)" in bare.summary()
    blur = _verdict(paint_blur(base, BOX, 8), [BOX])
    assert blur.regions[0].cover.kind == "blur"
    assert "it is blurred, not a mosaic" in blur.summary()
    half = _verdict(paint_mosaic(base, (300, 400, 380, 540), 12), [BOX])
    assert half.regions[0].status == NEEDS_MOSAIC
    assert "the 12 px mosaic covers only" in half.summary()


@pytest.mark.parametrize("colour", ["black", "white"])
def test_bars_are_publishable(colour):
    img = paint_bar(mark(scene(1001, 700), BOX), BOX, colour, inset=2)
    v = _verdict(img, [BOX], "strict x2")
    assert v.status == PUBLISHABLE and v.regions[0].cover.kind == "bar"
    assert f"{colour} bar over" in v.regions[0].reason


def test_several_regions_one_fails():
    other = (100, 100, 220, 200)
    img = mark(mark(scene(1001, 700), BOX), other, "penis")
    img = paint_mosaic(img, BOX, 12)
    v = _verdict(img, [BOX, other], labels=["pussy", "penis"])
    assert [r.status for r in v.regions] == [OK, NEEDS_MOSAIC]
    assert v.status == NEEDS_WORK and [r.name for r in v.failing] == ["R2"]
    assert v.summary().startswith("needs work: R2 (penis): needs a mosaic")


def test_no_region_is_publishable_and_verdict_is_json():
    v = judge([], [], 800, 600, rule_for("1/100"))
    assert v.status == PUBLISHABLE and "no region to obscure" in v.summary()
    r = Region((1, 2, 30, 40), "pussy", 0.8, "censor")
    v = judge([r], [Cover("mosaic", 3, (0, 0), 1.0, 0.8)], 1001, 700, rule_for("1/100"))
    d = v.to_dict()
    assert d["status"] == NEEDS_WORK and d["needed"] == 11 and d["rule"]["name"] == "1/100"
    assert d["regions"][0]["box"] == [1, 2, 30, 40]
    assert d["regions"][0]["cover"]["block"] == 3 and d["regions"][0]["status"] == TOO_FINE
