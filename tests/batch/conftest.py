"""What the batch tests share: a module's folder of real images (`folder`: photos, a black
frame, a 1×1 image, an RGBA one, a corrupt PNG and a text file), and a scripted ComfyUI
`/queue` server on 127.0.0.1 (`server`, reset for each test as `fake`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from helpers.fakecomfy import FakeComfy
from PIL import Image as PILImage


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    PILImage.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    PILImage.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=90)
    PILImage.new("RGB", (256, 256)).save(d / "black.png")
    PILImage.new("RGB", (1, 1), (200, 30, 30)).save(d / "one.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = skimage.data.chelsea()[:64, :64]
    rgba[..., 3] = 255
    PILImage.fromarray(rgba, "RGBA").save(d / "rgba.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def server():
    s = FakeComfy()
    yield s
    s.stop()


@pytest.fixture
def fake(server):
    server.answer()
    return server
