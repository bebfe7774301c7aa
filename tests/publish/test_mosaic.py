"""Saiten's own mosaic: rule-sized blocks on the image grid over each padded region — and its
output passes its own check, at several sizes and for every preset."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.censor_images import mark, paint_mosaic, scene

from scoring.publish import PUBLISHABLE, Region, apply_mosaic, judge, measure, rule_for
from scoring.publish.mosaic import padded


def test_padded_box_is_grown_to_whole_blocks_of_the_image_grid():
    assert padded((100, 100, 200, 150), 0.1, 11, 1001, 700) == (88, 88, 220, 165)
    assert padded((0, 0, 10, 10), 0.5, 8, 12, 12) == (0, 0, 12, 12)  # clipped
    x0, y0, x1, y1 = padded((37, 41, 173, 99), 0.0, 16, 1000, 1000)
    assert (x0 % 16, y0 % 16, x1 % 16, y1 % 16) == (0, 0, 0, 0)
    assert x0 <= 37 and y0 <= 41 and x1 >= 173 and y1 >= 99


@pytest.mark.parametrize(("h", "w"), [(512, 512), (1001, 700), (768, 1344), (2048, 1536)])
@pytest.mark.parametrize("rule", ["1/100", "strict x2"])
def test_output_passes_its_own_check(h, w, rule):
    r = rule_for(rule)
    box = (w // 3, h // 2, w // 3 + w // 6, h // 2 + h // 8)
    img = mark(scene(h, w, seed=h), box)
    block = r.block_for(w, h)
    out = apply_mosaic(img, [box], block, margin=0.1)
    c = measure(out, box)
    assert (c.kind, c.block, c.grid, c.cover) == ("mosaic", block, (0, 0), 1.0)
    v = judge([Region(box, "pussy", 0.9)], [c], w, h, r)
    assert v.status == PUBLISHABLE


def test_fixes_a_too_fine_mosaic_and_leaves_the_rest_alone():
    box = (300, 400, 460, 540)
    img = paint_mosaic(mark(scene(1001, 700), box), box, 3, (1, 1))
    out = apply_mosaic(img, [box], 11, margin=0.1)
    assert measure(out, box).block == 11
    x0, y0, x1, y1 = padded(box, 0.1, 11, 700, 1001)
    untouched = np.ones(img.shape[:2], bool)
    untouched[y0:y1, x0:x1] = False
    assert np.array_equal(out[untouched], img[untouched])


def test_blocks_are_means_and_partial_blocks_at_the_border():
    img = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    out = apply_mosaic(img, [(0, 0, 7, 5)], 4, margin=0)
    assert np.allclose(out[0, 0], img[:4, :4].reshape(-1, 3).mean(0))
    assert np.allclose(out[4, 6], img[4:, 4:].reshape(-1, 3).mean(0))  # a 1×3 corner block
    assert out.dtype == np.float32


def test_overlapping_boxes_share_blocks_and_uint8_rounds():
    img = scene(300, 300)
    one = apply_mosaic(img, [(50, 50, 150, 150), (100, 100, 200, 200)], 8, margin=0)
    two = apply_mosaic(apply_mosaic(img, [(50, 50, 150, 150)], 8, margin=0),
                       [(100, 100, 200, 200)], 8, margin=0)
    assert one.dtype == np.uint8 and one.shape == img.shape
    assert measure(one, (50, 50, 200, 200)).block == 8
    assert np.array_equal(one[:100, :100], two[:100, :100])


def test_bad_arguments():
    img = scene(50, 50)
    with pytest.raises(ValueError, match="at least 1 px"):
        apply_mosaic(img, [(0, 0, 10, 10)], 0)
    with pytest.raises(ValueError, match="margin"):
        apply_mosaic(img, [(0, 0, 10, 10)], 4, margin=-1)
    assert np.array_equal(apply_mosaic(img, [], 4), img)
    assert np.array_equal(apply_mosaic(img, [(60, 60, 90, 90)], 4), img)  # outside


def test_a_coarser_hand_mosaic_is_measured_not_replaced():
    box = (100, 100, 260, 220)
    img = paint_mosaic(mark(scene(600, 600), box), box, 16, (5, 9))
    c = measure(img, box)
    assert (c.block, c.grid) == (16, (5, 9))
