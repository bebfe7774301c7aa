"""Scores inside real PNG files (`scoring.report.png`): text chunks written beside
ComfyUI's, read back through Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from scoring.report.png import png_text, read_png_scores, save_png


def test_png_text_round_trip_through_pillow(tmp_path, entries):
    good = entries[0].verdict
    text = png_text(good)
    assert set(text) == {"saiten", "saiten_score"} and text["saiten_score"] == "63.0"
    assert text["saiten"].isascii()  # a tEXt chunk is Latin-1: Japanese goes as \\u escapes
    path = tmp_path / "scored.png"
    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    PILImage.fromarray(skimage.data.coffee()).save(path, pnginfo=info)
    with PILImage.open(path) as img:
        assert img.text["saiten_score"] == "63.0"
    back = read_png_scores(path)
    assert back["score"] == pytest.approx(63.0)
    assert back["comment"] == good.comment
    assert back["dropped"] == good.dropped
    assert back["sources"]["technical"]["penalty"] == 15
    assert back["sources"]["wd"]["axes"] == {"erotic": 64.0}


def test_save_png_keeps_other_chunks_and_unscored_has_no_score(tmp_path, entries):
    img = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    path = save_png(tmp_path / "u.png", img, entries[1].verdict, {"prompt": "{}"})
    with PILImage.open(path) as pil:
        assert pil.text["prompt"] == "{}" and "saiten_score" not in pil.text
        assert pil.size == (48, 32)
    back = read_png_scores(path)
    assert back["score"] is None and back["unscored"].startswith("1 of 2")
    assert back["sources"]["technical"] == {"abstained": "cannot read pixels"}


def test_read_png_scores_without_chunk(tmp_path):
    path = tmp_path / "plain.png"
    PILImage.new("RGB", (4, 4)).save(path)
    assert read_png_scores(path) is None
