"""NudeNet with the REAL 320n.onnx from the `nudenet` wheel, on real photos and odd inputs."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from helpers import REPO

from scoring.core.images import as_rgb
from scoring.sources import create
from scoring.sources.onnx import nudenet as N
from scoring.sources.onnx import session as onnx_session


@pytest.fixture(scope="module")
def source():
    src = create("nudenet", batch_size=4)
    yield src
    src.unload()


@pytest.fixture(scope="module")
def photos():
    return {name: as_rgb(getattr(skimage.data, name)()) for name in
            ("astronaut", "chelsea", "coffee", "camera")}


def test_model_is_found_without_importing_nudenet():
    import subprocess
    import sys
    code = ("import sys; from scoring.sources import create; s = create('nudenet'); "
            "print(s.model_path.name, 'nudenet' in sys.modules, 'cv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(REPO))
    assert out.stdout.split() == ["320n.onnx", "False", "False"]


def test_real_photos_mixed_sizes_one_card_each(source, photos):
    sheet = source.score(list(photos.values()))
    assert len(sheet) == 4 and all(len(cards) == 1 and cards[0].ok for cards in sheet)
    astronaut = sheet[0][0]
    assert astronaut.tags.get("FACE_FEMALE", 0) > 0.5          # Eileen Collins' face
    assert astronaut.axes["erotic"] == N.explicitness(astronaut.tags) == 0.0
    assert sheet[1][0].extras["detections"] == []               # a cat
    for cards in sheet:
        c = cards[0]
        assert c.source == "nudenet" and c.kind == "detector" and c.provides == ("erotic",)
        assert 0.0 <= c.axes["erotic"] <= 100.0
        for d in c.extras["detections"]:
            x, y, w, h = d["box"]
            assert d["class"] in N.LABELS and 0.25 <= d["score"] <= 1.0
            assert 0 <= x and 0 <= y and w >= 0 and h >= 0
    assert source.provider == "CPUExecutionProvider"
    assert "CPU" in source.describe() and sheet.timing["images"] == 4


def test_decoding_matches_nudenet_3_4_2(source, photos):
    """Same detections as nudenet's own pre- and post-processing (cv2) on the same photo."""
    cv2 = pytest.importorskip("cv2")
    from nudenet import nudenet as ref

    img = skimage.data.astronaut()
    blob, *meta = ref._read_image(cv2.cvtColor(img, cv2.COLOR_RGB2RGBA), 320)
    x_ratio, y_ratio, x_pad, y_pad, w, h = meta
    out = source.model.session.run(None, {"images": blob})
    theirs = ref._postprocess(out, x_pad, y_pad, x_ratio, y_ratio, w, h, 320, 320)
    ours = N.detections(out[0][0], w, h, max(w, h))
    assert ours and [d["class"] for d in ours] == [d["class"] for d in theirs]
    assert [d["score"] for d in ours] == pytest.approx([d["score"] for d in theirs], abs=1e-4)
    assert all(np.allclose(a["box"], b["box"], atol=1) for a, b in zip(ours, theirs, strict=True))
    ours_blob, _ = N.prepare(as_rgb(img))                        # our resize ≈ cv2's
    assert np.abs(ours_blob - blob[0]).mean() < 0.01


def test_preprocessing_pads_black_bottom_right_and_scales():
    img = np.zeros((100, 200, 3), np.float32)
    img[:, :, 0] = 1.0                                           # pure red, wide
    blob, (w, h, side) = N.prepare(img)
    assert blob.shape == (3, 320, 320) and blob.dtype == np.float32
    assert (w, h, side) == (200, 100, 200)
    assert np.allclose(blob[:, :160, :], np.array([1, 0, 0])[:, None, None])   # RGB order
    assert np.all(blob[:, 160:, :] == 0)                                       # black pad


def test_explicitness_formula():
    assert N.explicitness({}) == 0.0
    assert N.explicitness({"FACE_FEMALE": 0.99, "FEET_COVERED": 0.9}) == 0.0
    assert N.explicitness({"FEMALE_GENITALIA_EXPOSED": 0.9}) == 90.0
    assert N.explicitness({"FEMALE_BREAST_COVERED": 0.8}) == 16.0
    both = N.explicitness({"FEMALE_BREAST_EXPOSED": 0.8, "BUTTOCKS_EXPOSED": 0.6})
    assert both == pytest.approx(100 * (1 - (1 - 0.48) * (1 - 0.3)))
    assert N.explicitness({"ANUS_EXPOSED": 0.5}) > N.explicitness({"BUTTOCKS_EXPOSED": 0.5}) \
        > N.explicitness({"BUTTOCKS_COVERED": 0.5}) > N.explicitness({"FEET_EXPOSED": 0.5})
    assert set(N.EXPLICITNESS) == set(N.LABELS)


def test_nms_suppresses_overlaps_keeps_separate_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 10]],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.1], np.float32)
    assert N.nms(boxes, scores) == [0, 2]


def test_odd_inputs_are_handled_or_abstain_per_image(source, photos):
    rgba = np.dstack([photos["coffee"], np.full(photos["coffee"].shape[:2], 0.5, np.float32)])
    nan = np.full((64, 64, 3), np.nan, np.float32)
    few_nan = photos["chelsea"].copy()
    few_nan[0, 0] = np.nan
    images = [
        as_rgb(rgba),                                   # RGBA → over white
        as_rgb(skimage.data.camera()),                  # grayscale
        np.full((1, 1, 3), 0.5, np.float32),            # 1×1
        np.zeros((4000, 3000, 3), np.float32),          # very large
        nan,                                            # broken VAE decode
        few_nan,                                        # one bad pixel: cleaned
        np.zeros((5, 5), np.float32),                   # not HxWx3
        photos["astronaut"],
    ]
    sheet = source.score(images)
    assert len(sheet) == len(images)
    ok = [cards[0].ok for cards in sheet]
    assert ok == [True, True, True, True, False, True, False, True]
    assert "NaN" in sheet[4][0].abstained and "shape" in sheet[6][0].abstained
    assert sheet[7][0].tags.get("FACE_FEMALE", 0) > 0.5   # the others still scored


def test_empty_batch(source):
    assert source.score([]) == []


def test_session_is_cached_and_reused_and_unload_drops_it():
    a = create("nudenet")
    b = create("nudenet")
    img = [np.full((32, 48, 3), 0.3, np.float32)]
    a.score(img)
    b.score(img)
    assert a.model is b.model and a.model in onnx_session.cached()
    model = a.model
    a.unload()
    assert model.closed and model not in onnx_session.cached()
    assert not b.loaded                                  # b reopens lazily
    assert b.score(img)[0][0].ok and b.model is not model
    b.unload()


def test_keep_loaded_false_unloads_after_the_batch():
    src = create("nudenet", keep_loaded=False)
    assert src.score([np.full((16, 16, 3), 0.5, np.float32)])[0][0].ok
    assert not src.loaded


def test_cancel_between_chunks(source, photos):
    from scoring.sources import Cancelled, ScoreContext
    seen = []
    ctx = ScoreContext(progress=seen.append, interrupted=lambda: len(seen) >= 1)
    with pytest.raises(Cancelled):
        create("nudenet", batch_size=1).score([photos["chelsea"]] * 3, ctx)
    assert seen == [0]
