"""The technical check on real photos (scikit-image) and on synthetic broken generations."""

from __future__ import annotations

import time

import numpy as np
import pytest
import skimage.data
from skimage.filters import gaussian

from scoring.aggregate import combine
from scoring.cards import ScoreCard
from scoring.images import as_rgb
from scoring.sources import ScoreContext, create
from scoring.sources.technical import TechnicalCheck, inspect

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry",
          "hubble_deep_field", "coins", "moon", "retina", "page", "text")


def photo(name: str) -> np.ndarray:
    return as_rgb(getattr(skimage.data, name)())


def blurred(name: str, sigma: float) -> np.ndarray:
    return gaussian(photo(name), sigma=sigma, channel_axis=2).astype(np.float32)


@pytest.mark.parametrize("name", PHOTOS)
def test_real_photos_pass(name):
    penalty, reasons, measured = inspect(photo(name))
    assert penalty == 0, reasons
    assert measured["width"] > 0 and "blur_ratio" in measured


def frame(value: float, shape=(256, 320)) -> np.ndarray:
    return np.full((*shape, 3), value, np.float32)


@pytest.mark.parametrize(("image", "expect", "min_penalty"), [
    (frame(0.0), "black frame", 90),
    (frame(1.0), "white frame", 90),
    (frame(0.5), "flat uniform frame", 90),
    (frame(np.nan), "NaN/inf pixels (broken VAE decode)", 100),
    (frame(np.inf), "NaN/inf pixels (broken VAE decode)", 100),
    (frame(0.0, (1, 1)), "tiny image (1×1 px)", 60),
])
def test_broken_frames(image, expect, min_penalty):
    penalty, reasons, _ = inspect(image)
    assert penalty >= min_penalty
    assert any(expect in r for r in reasons), reasons


def test_partly_nan_frame_reports_the_fraction():
    img = photo("astronaut")
    img[:128] = np.nan  # a quarter of the rows
    penalty, reasons, measured = inspect(img)
    assert penalty == 100 and reasons == ["NaN/inf pixels (broken VAE decode): 25.0% of pixels"]
    assert measured["nonfinite_frac"] == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "camera", "coins", "moon"])
def test_gaussian_blur_is_caught(name):
    penalty, reasons, _ = inspect(blurred(name, 3))
    assert penalty >= 15 and any("blurry" in r for r in reasons), reasons


def test_blur_penalty_grows_with_blur():
    mild = inspect(blurred("coffee", 3))
    severe = inspect(blurred("coffee", 8))
    assert 0 < mild[0] < severe[0]
    assert mild[2]["blur_ratio"] > severe[2]["blur_ratio"]


@pytest.mark.parametrize(("name", "gain", "lift"), [
    ("chelsea", 3.0, 0.0), ("astronaut", 1.0, 0.6), ("camera", 1.0, 0.6), ("coins", 1.0, 0.5)])
def test_heavy_over_exposure(name, gain, lift):
    img = np.clip(photo(name) * gain + lift, 0, 1)
    penalty, reasons, measured = inspect(img)
    assert any(r.startswith("over-exposed") for r in reasons), (reasons, measured)
    assert penalty >= 25


def test_white_background_alone_is_not_over_exposure():
    img = np.ones((512, 384, 3), np.float32)  # an illustration: white page, dark-haired figure
    img[100:400, 100:300] = photo("astronaut")[100:400, 150:350]
    penalty, reasons, measured = inspect(img)
    assert measured["clipped_white"] > 0.6
    assert penalty == 0, reasons


def test_washed_out_and_dark_frames_are_low_contrast():
    washed = (0.8 + 0.15 * photo("chelsea")).astype(np.float32)
    dark = (0.1 * photo("astronaut")).astype(np.float32)
    for img in (washed, dark):
        penalty, reasons, _ = inspect(img)
        assert any(r.startswith("low contrast") for r in reasons) and penalty >= 20
        assert not any("blurry" in r for r in reasons)  # contrast is not mistaken for blur


@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (3, 3), (7, 1000), (1001, 3)])
def test_odd_sizes(shape):
    rng = np.random.default_rng(1)
    penalty, reasons, measured = inspect(rng.random((*shape, 3), dtype=np.float32))
    assert 0 <= penalty <= 100
    assert measured["width"] == shape[1] and measured["height"] == shape[0]
    if min(shape) < 16:
        assert any("tiny image" in r for r in reasons)


def test_large_noise_frame_is_cheap():
    img = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    start = time.perf_counter()
    penalty, reasons, measured = inspect(img)
    assert time.perf_counter() - start < 3.0
    assert penalty == 0 and measured["range_1_99"] > 0.5, reasons


def test_source_cards_and_ensemble():
    src = create("technical")
    assert isinstance(src, TechnicalCheck) and src.kind == "check"
    images = [photo("coffee"), frame(0.0), frame(np.nan, (8, 8)), blurred("chelsea", 4)]
    done: list[int] = []
    sheet = src.score(images, ScoreContext(progress=done.append))
    assert done == [0, 1, 2, 3] and [len(cards) for cards in sheet] == [1, 1, 1, 1]
    cards = [cards[0] for cards in sheet]
    assert all(c.ok and c.source == "technical" and c.provides == ("overall",) for c in cards)
    assert cards[0].penalty == 0 and cards[0].reasons == []
    assert cards[1].reasons == ["black frame: no content (std 0.000)"]
    assert cards[2].penalty == 100
    # as the second source of the ensemble: the penalty comes off `overall`
    other = ScoreCard(source="nudenet", kind="detector", provides=("erotic",),
                      axes={"erotic": 20.0})
    scores = [combine([other, c]).score for c in cards]
    assert scores[0] == 100 and scores[1] == 10 and scores[2] == 0 and scores[3] < 100


def test_a_bad_array_abstains_for_that_image_only():
    src = TechnicalCheck()
    sheet = src.score([photo("coffee"), np.zeros((4, 4), np.float32)])
    assert sheet[0][0].ok
    assert not sheet[1][0].ok and sheet[1][0].abstained
