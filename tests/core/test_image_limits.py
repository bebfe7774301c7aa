"""Memory bounded by design when reading files (issue N.5, N.7): frames are decoded one at a
time and at most MAX_FRAMES a file, images over MAX_PIXELS are decoded downscaled, an image
over MAX_DECODE_PIXELS that cannot be (any format but JPEG) is refused before decoding,
and a file cut short says so whatever its fill — all on real files, memory measured with
tracemalloc (numpy and Python allocations)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from helpers.hostile_files import CUTS, big_png, cut, many_frames_gif, photo
from PIL import Image

from scoring.core.images import (
    MAX_DECODE_PIXELS,
    MAX_FRAMES,
    MAX_PIXELS,
    BadImage,
    Frames,
    load,
    load_frames,
)

MB = 1 << 20


def peak_during(fn):
    """(result, peak bytes traced while `fn` ran)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_animated_file_gives_at_most_max_frames_and_names_the_rest(tmp_path):
    gif = many_frames_gif(tmp_path / "anim.gif", frames=300, side=128)
    frames = Frames(gif)
    assert (frames.total, frames.count) == (300, MAX_FRAMES)
    assert frames.skipped == (f"anim.gif: 300 frames; the first {MAX_FRAMES} are scored, "
                              f"{300 - MAX_FRAMES} skipped (at most {MAX_FRAMES} frames a file)")
    got = list(frames)
    assert [f.index for f in got] == list(range(MAX_FRAMES))
    assert len({f.image.tobytes() for f in got}) == MAX_FRAMES  # each its own frame
    assert len(load_frames(gif)) == MAX_FRAMES and Frames(gif, 500).count == 300


def test_frames_are_decoded_one_at_a_time(tmp_path):
    """The 300-frame 1024² GIF of the issue (3.7 GB when every frame was decoded at once):
    walking its frames never holds more than about two frames."""
    gif = many_frames_gif(tmp_path / "anim.gif", frames=300, side=1024)
    assert gif.stat().st_size < 3 * MB
    one = 1024 * 1024 * 3 * 4  # one float32 frame: 12 MB

    def walk() -> int:
        n = 0
        for f in Frames(gif):
            n += f.image.shape[0]
        return n

    rows, peak = peak_during(walk)
    assert rows == MAX_FRAMES * 1024
    assert peak < 2.5 * one, f"peak {peak / MB:.0f} MB while reading frame by frame"


def test_a_13000_px_png_is_refused_before_decoding(tmp_path):
    png = big_png(tmp_path / "big.png", 13000, 13000)
    assert png.stat().st_size < 1 * MB  # a small file claiming 169 MP (7.8 GB before)
    t0 = time.perf_counter()
    with pytest.raises(BadImage) as got:
        peak_during(lambda: list(Frames(png)))
    assert time.perf_counter() - t0 < 2.0  # nothing decoded
    assert str(got.value) == (
        f"big.png: 13000×13000 px (169 MP) is more than the {MAX_DECODE_PIXELS / 1e6:.0f} "
        "MP Saiten decodes (only JPEG is decoded downscaled): save it smaller first")


def test_a_decompression_bomb_is_refused_with_its_name(tmp_path):
    bomb = big_png(tmp_path / "bomb.png", 20000, 20000, bits=1)
    with pytest.raises(BadImage, match=r"^bomb\.png: .*decompression bomb"):
        Frames(bomb)


def test_a_large_png_is_reduced_right_after_decoding(tmp_path):
    png = big_png(tmp_path / "wide.png", 6000, 4000, colour=(10, 200, 30))
    (frame,), peak = peak_during(lambda: list(Frames(png)))
    h, w, _ = frame.image.shape
    assert (w, h) == (3000, 2000) and h * w <= MAX_PIXELS
    assert frame.note == "downscaled from 6000×4000 px"
    assert np.allclose(frame.image[0, 0], np.array([10, 200, 30]) / 255)
    assert peak < 3000 * 2000 * 12 * 2.5  # never a full-size float32 copy (288 MB)


def test_a_huge_jpeg_is_decoded_downscaled_by_the_decoder(tmp_path):
    """A 72 MP JPEG (over what Saiten decodes at full size) comes out through `draft`: the
    decoder itself works at 1/2 scale, then a reduce fits it in MAX_PIXELS."""
    img = Image.new("L", (9000, 8000), 90)
    img.paste(255, (1000, 1000, 5000, 4000))
    img.save(tmp_path / "huge.jpg", quality=80)
    del img
    frame = next(iter(Frames(tmp_path / "huge.jpg")))
    h, w, _ = frame.image.shape
    assert h * w <= MAX_PIXELS and (w, h) == (2250, 2000)
    assert frame.note == "downscaled from 9000×8000 px"
    assert frame.image[500, 500].max() > 0.95 and frame.image[100, 100].max() < 0.4


@pytest.mark.parametrize("kind", list(CUTS))
@pytest.mark.parametrize("keep", [0.02, 0.05, 0.3, 0.7])
def test_a_file_cut_short_says_so_whatever_its_fill(tmp_path, kind, keep):
    path = cut(tmp_path / f"cut.{CUTS[kind][1].lower()}", photo("astronaut"), kind, keep)
    frames = list(Frames(path))
    assert frames[0].partial.startswith(f"{path.name} is cut short: only part of it decoded")
    assert frames[0].image.shape == (512, 512, 3)  # decoded as far as it goes, as LoadImage


def test_a_whole_file_is_not_partial(tmp_path):
    Image.fromarray(photo("coffee")).save(tmp_path / "whole.png")
    assert [f.partial for f in Frames(tmp_path / "whole.png")] == [""]
    assert load(tmp_path / "whole.png").shape == (400, 600, 3)
