"""The technical check on real photos (scikit-image) and on synthetic broken generations."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import skimage.data
from PIL import Image as PILImage
from PIL import ImageFile
from scipy import ndimage
from skimage.filters import gaussian

from scoring.core.cards import ScoreCard
from scoring.core.images import as_rgb
from scoring.ensemble.aggregate import combine
from scoring.sources import ScoreContext, create
from scoring.sources.technical import BAND_PENALTY, NOISE_PENALTY, TechnicalCheck, inspect

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry",
          "hubble_deep_field", "coins", "moon", "retina", "page", "text",
          "grass", "gravel", "brick", "cat", "clock", "horse", "binary_blobs", "checkerboard")


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
    """12 Mpx of noise costs a few passes over its pixels (a strided sample, not a full-size
    analysis): timed against one pass — a grey conversion — side by side, best of 5 each, so
    a loaded machine slows both alike (working on every pixel costs ~30 such passes)."""
    img = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    penalty, reasons, measured = inspect(img)
    # pure noise is a broken generation now (issue G.6), found at the same cost
    assert penalty == NOISE_PENALTY and reasons[0].startswith("pure noise"), reasons
    assert measured["neighbour_corr"] < 0.1
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    one_pass, whole = [], []
    for _ in range(5):
        start = time.perf_counter()
        np.clip(img @ luma, 0.0, 1.0)
        one_pass.append(time.perf_counter() - start)
        start = time.perf_counter()
        inspect(img)
        whole.append(time.perf_counter() - start)
    assert min(whole) < 8 * min(one_pass), (whole, one_pass)


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


# -- broken images (issue G.6) ---------------------------------------------------------

def truncated(name: str, fmt: str, keep: float = 0.5) -> np.ndarray:
    """`name` saved as `fmt`, the file cut to `keep` of its bytes, decoded as ComfyUI's
    LoadImage decodes it (PIL with LOAD_TRUNCATED_IMAGES)."""
    buf = io.BytesIO()
    PILImage.fromarray((photo(name) * 255).astype(np.uint8)).save(buf, fmt)
    data = buf.getvalue()[: int(len(buf.getvalue()) * keep)]
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            return as_rgb(np.asarray(im.convert("RGB")))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera",
                                  "coins", "page"])
@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_a_truncated_png_is_partially_decoded(name, keep):
    img = truncated(name, "PNG", keep)
    assert (img[-1] == 0).all()  # the missing rows are black, as LoadImage shows them
    penalty, reasons, measured = inspect(img)
    assert penalty >= BAND_PENALTY and reasons[0].startswith("partially decoded: the bottom")
    assert "RGB 0, 0, 0" in reasons[0] and 0.05 < measured["band_frac"] < 0.9


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "camera"])
def test_a_truncated_jpeg_is_partially_decoded(name):
    penalty, reasons, _ = inspect(truncated(name, "JPEG"))
    assert penalty >= BAND_PENALTY and "RGB 128, 128, 128" in reasons[0], reasons


def illustration(background: tuple[float, float, float], box: tuple[slice, slice],
                 shape=(512, 384)) -> np.ndarray:
    img = np.ones((*shape, 3), np.float32) * np.array(background, np.float32)
    img[box] = photo("astronaut")[: box[0].stop - box[0].start, 100: 100 + box[1].stop
                                  - box[1].start]
    return img


@pytest.mark.parametrize(("background", "box"), [
    ((1.0, 1.0, 1.0), (slice(100, 400), slice(100, 300))),  # a figure on a white page
    ((0.9, 0.8, 0.7), (slice(0, 420), slice(40, 344))),     # a flat floor below, and beside
    ((0.2, 0.3, 0.8), (slice(0, 512), slice(100, 300))),    # flat colour both sides
    ((0.0, 0.0, 0.0), (slice(60, 380), slice(60, 320))),    # a black backdrop all around
])
def test_flat_illustration_backgrounds_are_not_broken(background, box):
    reasons = inspect(illustration(background, box))[1]
    assert not any("partially decoded" in r or "noise" in r for r in reasons), reasons


def test_letterbox_bars_are_not_a_decode_failure():
    img = np.zeros((512, 512, 3), np.float32)
    img[96:416] = photo("coffee")[:320, 50:562]  # black bars above and below
    assert not any("partially decoded" in r for r in inspect(img)[1])


def latent_noise(shape=(768, 512), factor=8, seed=0) -> np.ndarray:
    """What a wrong VAE or a 1-step sample looks like: colour noise at the latent's scale."""
    rng = np.random.default_rng(seed)
    lat = rng.standard_normal((shape[0] // factor, shape[1] // factor, 3))
    return (ndimage.zoom(lat, (factor, factor, 1), order=3).clip(-2.5, 2.5) / 5 + 0.5
            ).astype(np.float32)


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "grey", "latent8", "latent4",
                                  "mostly noise"])
def test_pure_noise_is_caught(kind):
    rng = np.random.default_rng(3)
    img = {
        "uniform": lambda: rng.random((512, 512, 3), dtype=np.float32),
        "gaussian": lambda: np.clip(0.5 + 0.2 * rng.standard_normal((512, 640, 3)), 0, 1),
        "grey": lambda: np.repeat(rng.random((400, 600, 1), dtype=np.float32), 3, axis=2),
        "latent8": lambda: latent_noise(),
        "latent4": lambda: latent_noise((512, 512), 4),
        "mostly noise": lambda: 0.3 * photo("astronaut")
        + 0.7 * rng.random((512, 512, 3), dtype=np.float32),
    }[kind]()
    penalty, reasons, measured = inspect(np.asarray(img, np.float32))
    assert penalty == NOISE_PENALTY and reasons[0].startswith("pure noise"), (reasons, measured)


def test_a_noisy_photo_is_not_pure_noise():
    rng = np.random.default_rng(4)
    img = 0.6 * photo("astronaut") + 0.4 * rng.random((512, 512, 3), dtype=np.float32)
    assert not any("noise" in r for r in inspect(img)[1])
