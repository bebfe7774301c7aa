"""What the ONNX sources share (`scoring.sources.onnx.base`), on real onnxruntime with a tiny
model: the pixels a model gets (a few bad ones cleaned, a broken decode refused), a model of
another format closed again with every image abstaining, and what a call reports about how
it ran."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.models.onnx_models import build_wd, wd_tags

from scoring.core.images import MAX_BAD_PIXELS, BadImage
from scoring.sources import create
from scoring.sources.onnx import session as onnx_session
from scoring.sources.onnx.base import uint8_image

GREY = np.full((24, 20, 3), 0.5, np.float32)


@pytest.fixture(scope="module")
def wd_dir(tmp_path_factory):
    tags = wd_tags()
    return build_wd(tmp_path_factory.mktemp("onnx_base") / "wd-tiny", tags,
                    np.eye(3, len(tags)), np.zeros(len(tags)), size=16)


def test_the_pixels_a_model_gets():
    img = np.full((10, 10, 3), 0.5, np.float32)
    img[0, 0] = [np.nan, np.inf, -np.inf]  # 1 % of the pixels: a few bad ones are cleaned
    out = uint8_image(img)
    assert out.dtype == np.uint8 and out.shape == (10, 10, 3)
    assert out[0, 0].tolist() == [0, 255, 0] and out[5, 5].tolist() == [128, 128, 128]
    assert MAX_BAD_PIXELS == 0.01
    img[0, 1] = np.nan  # 2 %: a broken decode
    with pytest.raises(BadImage, match=r"2% of the pixels are NaN/inf"):
        uint8_image(img)
    for shape in ((10, 10), (10, 10, 4), (0, 10, 3)):
        with pytest.raises(BadImage, match="expected an HxWx3 image"):
            uint8_image(np.zeros(shape, np.float32))


def test_a_model_of_another_format_is_closed_and_every_image_abstains(wd_dir):
    src = create("nudenet", model_path=wd_dir / "model.onnx")  # NHWC where NCHW is expected
    sheet = src.score([GREY, GREY])
    (a,), (b,) = sheet
    assert not a.ok and a.abstained == b.abstained
    assert "does not match the expected" in a.abstained and "right model file" in a.abstained
    assert not src.loaded
    assert all(m.path != wd_dir / "model.onnx" for m in onnx_session.cached())


def test_a_call_says_how_it_ran(wd_dir):
    src = create("wd", model_path=wd_dir, batch_size=2)
    assert src.describe() == "wd (model.onnx, not loaded)" and src.provider == ""
    first = src.score([GREY] * 3)
    assert first.timing["images"] == 3.0
    assert first.timing["preprocess_s"] >= 0 and first.timing["inference_s"] > 0
    assert first.provider == "CPUExecutionProvider" and not first.reused
    assert src.describe() == "wd: model.onnx on CPU"
    again = create("wd", model_path=wd_dir).score([GREY])  # another source, the same session
    assert again.reused and again.provider == "CPUExecutionProvider"
    src.unload()
    assert src.describe() == "wd (model.onnx, not loaded)"
