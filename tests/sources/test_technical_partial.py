"""Broken frames caught whatever the fill colour (issue N.7), from the pixels alone — what a
node gets from ComfyUI's LoadImage, which decodes a file cut short as far as its data goes:
grey below a baseline JPEG's cut (mid-row, in its last MCU strip), black below a PNG's,
a colour the picture itself has below a palette PNG's, and alternate rows of an interlaced
GIF. Whole pictures with flat areas (a margin, a letterbox, a frame, a figure on a plain
page) are not broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from helpers.hostile_files import CUTS, cut, many_frames_gif, photo
from PIL import Image, ImageFile, ImageOps

from scoring.core.images import Frames, list_images
from scoring.sources.technical import BAND_PENALTY, PARTIAL, inspect

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def loadimage(path: Path) -> np.ndarray:
    """The pixels as ComfyUI's LoadImage makes them of a truncated file (node_helpers.pillow
    retries with LOAD_TRUNCATED_IMAGES, then exif_transpose, RGB, /255)."""
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.parametrize("picture", ["astronaut", "chelsea", "coffee", "rocket"])
@pytest.mark.parametrize("kind", list(CUTS))
def test_a_frame_decoded_only_partly_is_broken_whatever_the_fill(tmp_path, picture, kind):
    for keep in (0.02, 0.05, 0.3, 0.7, 0.9):
        path = cut(tmp_path / f"cut.{CUTS[kind][1].lower()}", photo(picture), kind, keep)
        penalty, reasons, measured = inspect(loadimage(path))
        assert reasons and reasons[0].startswith(f"{PARTIAL}: "), (keep, reasons)
        assert penalty == BAND_PENALTY and len(reasons) == 1
        assert 0 < measured["band_frac"] < 1


def test_the_fill_is_named_in_the_reason(tmp_path):
    jpeg = cut(tmp_path / "c.jpeg", photo("coffee"), "grey (baseline JPEG)", 0.5)
    assert "RGB 128, 128, 128) cut straight across" in inspect(loadimage(jpeg))[1][0]
    gif = cut(tmp_path / "c.gif", photo("coffee"), "alternate rows (interlaced GIF)", 0.5)
    assert "an interlaced file cut short" in inspect(loadimage(gif))[1][0]


def page(shape=(600, 420), paper=1.0) -> np.ndarray:
    return np.full((*shape, 3), paper, np.float32)


def figure(img: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    img[top:top + h, left:left + w] = photo("astronaut")[:h, 60:60 + w] / 255
    return img


def manga() -> np.ndarray:
    """White paper, three panels with black borders, a white margin all round."""
    img = page()
    for top, bottom in ((30, 200), (210, 390), (400, 560)):
        img[top:bottom, 25:395] = 0.0
        img[top + 3:bottom - 3, 28:392] = 1.0
        figure(img, top + 20, 120, bottom - top - 40, 150)
    return img


def letterbox(colour: float) -> np.ndarray:
    img = page((512, 512), colour)
    img[80:432] = photo("coffee")[:352, :512] / 255
    return img


def framed() -> np.ndarray:
    img = page((500, 400), 0.1)
    img[20:480, 20:380] = photo("astronaut")[:460, 100:460] / 255
    return img


ILLUSTRATIONS = {
    "figure on a page, empty below": lambda: figure(page(), 40, 130, 300, 160),
    "figure to the bottom of a wide box": lambda: figure(page(paper=0.8), 0, 30, 500, 360),
    "manga page with margins": manga,
    "black letterbox": lambda: letterbox(0.0),
    "white letterbox": lambda: letterbox(1.0),
    "a frame round the picture": framed,
    "a flat floor beside and under a figure": lambda: figure(page(paper=0.6), 0, 40, 480, 300),
}


@pytest.mark.parametrize("name", list(ILLUSTRATIONS))
def test_flat_areas_of_whole_pictures_are_not_partial(name):
    reasons = inspect(ILLUSTRATIONS[name]())[1]
    assert not any(r.startswith(PARTIAL) for r in reasons), reasons


def test_flat_shapes_on_a_flat_ground_are_not_partial(tmp_path):
    """A flat graphic: rectangles wider than the frame over a plain ground (the frames of
    hostile_files.many_frames_gif), whose bottom rows are the ground."""
    gif = many_frames_gif(tmp_path / "shapes.gif", frames=24, side=96)
    for frame in Frames(gif, 24):
        assert not any(r.startswith(PARTIAL) for r in inspect(frame.image)[1]), frame.index


def test_no_photo_or_sample_is_partial():
    seen = 0
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "page",
                 "moon", "text", "clock", "horse", "hubble_deep_field", "immunohistochemistry",
                 "retina", "grass", "gravel", "brick", "cat", "logo", "colorwheel"):
        a = np.asarray(getattr(skimage.data, name)())
        a = a if a.ndim == 3 else np.stack([a] * 3, -1)
        a = a.astype(np.float32) / (255.0 if a.dtype != bool else 1.0)
        reasons = inspect(a[..., :3])[1]
        assert not any(r.startswith(PARTIAL) for r in reasons), (name, reasons)
        seen += 1
    for path in list_images(SAMPLES):
        for frame in Frames(path):
            assert not any(r.startswith(PARTIAL) for r in inspect(frame.image)[1]), path
            seen += 1
    assert seen >= 25
