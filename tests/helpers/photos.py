"""A folder of real photos for CLI runs: `images` (astronaut.png, coffee.jpg and an all-black
black.png), built once per test module. Use with `pytest_plugins = ["helpers.photos"]`."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage.data
from PIL import Image as PILImage


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rubric_images")
    PILImage.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    PILImage.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=90)
    PILImage.new("RGB", (256, 256)).save(d / "black.png")
    return d
