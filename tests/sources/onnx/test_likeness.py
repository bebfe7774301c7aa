"""The `likeness` source on a stand-in CCIP feature model with the real I/O contract
(`input` → `output`, deepghs/ccip_onnx's folder with metrics.json): the difference is
(1 − cos)/2 of the features, the threshold the model's own, references from images or a
folder (features cached), several references merged."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from helpers.models.ccip_models import THRESHOLD, build_ccip
from PIL import Image as PILImage

from scoring.sources import ScoreContext
from scoring.sources.onnx import likeness as L

RED = (0.85, 0.2, 0.25)
BLUE = (0.15, 0.3, 0.9)


def character(colour, size=(300, 220), seed=0):
    """An image dominated by one colour (the stand-in's notion of a character)."""
    rng = np.random.default_rng(seed)
    img = np.empty((*size, 3), np.float32)
    img[:] = colour
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    img[: size[0] // 5] = (0.95, 0.93, 0.9)  # some background
    return np.clip(img, 0, 1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_ccip(tmp_path_factory.mktemp("ccip") / "ccip-caformer-24-randaug-pruned")


@pytest.fixture(scope="module")
def source(model):
    src = L.LikenessSource(model_path=model.parent)
    yield src
    src.unload()


def ctx(references):
    return ScoreContext(options={"references": references})


def test_same_and_other_character(source):
    refs = [character(RED, seed=s) for s in range(3)]
    result = source.score([character(RED, seed=9), character(BLUE, seed=9)], ctx(refs))
    same, other = result[0][0], result[1][0]
    assert same.ok and other.ok and same.provides == ("likeness",)
    assert same.extras["same_character"] and not other.extras["same_character"]
    assert same.axes["likeness"] > 90 and other.axes["likeness"] == 0.0
    assert same.extras["threshold"] == round(THRESHOLD, 4) and same.extras["references"] == 3
    assert result.timing["references"] == 3.0


def test_difference_is_half_one_minus_cosine_of_the_models_features(source, model):
    """Checked against onnxruntime run by hand with imgutils' preprocessing."""
    refs = [character(RED, seed=1), character((0.8, 0.3, 0.3), seed=2)]
    img = character((0.7, 0.25, 0.35), seed=3)
    card = source.score([img], ctx(refs))[0][0]
    sess = ort.InferenceSession(str(model))

    def feat(a):
        pil = PILImage.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))
        x = np.asarray(pil.resize((384, 384), PILImage.Resampling.BILINEAR), np.float32) / 255
        x = ((x - L.MEAN) / L.STD).transpose(2, 0, 1)[None]
        return sess.run(["output"], {"input": x})[0][0]

    f = feat(img)
    want = []
    for r in refs:
        g = feat(r)
        want.append((1 - f @ g / np.linalg.norm(f) / np.linalg.norm(g)) / 2)
    assert card.extras["differences"] == pytest.approx(want, abs=1e-4)
    assert card.extras["difference"] == pytest.approx(float(np.median(want)), abs=1e-4)
    assert card.axes["likeness"] == L.likeness(float(np.median(want)), THRESHOLD)


def test_several_references_merge_as_the_median(source):
    refs = [character(RED, seed=1), character(RED, seed=2), character(BLUE, seed=3)]
    card = source.score([character(RED, seed=4)], ctx(refs))[0][0]
    d = card.extras["differences"]
    assert d[2] > THRESHOLD > max(d[:2])              # one wrong reference …
    assert card.extras["same_character"]               # … does not sway the median


def test_likeness_scale():
    assert L.likeness(0.0, 0.18) == 100.0
    assert L.likeness(0.18, 0.18) == 50.0
    assert L.likeness(0.36, 0.18) == 0.0 and L.likeness(0.9, 0.18) == 0.0
    d = L.differences(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]))
    assert d.tolist() == [[0.0, 1.0, 0.5]]


def test_references_from_a_folder_cached_until_it_changes(source, tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(2):
        PILImage.fromarray((character(RED, seed=i) * 255).astype(np.uint8)).save(
            folder / f"r{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    img = [character(RED, seed=5)]
    first = source.score(img, ctx(str(folder)))[0][0]
    assert first.ok and first.extras["references"] == 2   # the broken file is skipped
    key = str(folder)
    sig, keys = source._folders[key]
    assert all(k in source._features for k in keys)
    again = source.score(img, ctx(str(folder)))[0][0]
    assert again.extras == first.extras and source._folders[key] == (sig, keys)
    PILImage.fromarray((character(BLUE, seed=7) * 255).astype(np.uint8)).save(folder / "r2.png")
    os.utime(folder / "r2.png")
    changed = source.score(img, ctx(str(folder)))[0][0]
    assert changed.extras["references"] == 3 and source._folders[key][0] != sig


def test_without_references_it_abstains_and_says_what_to_connect(source, tmp_path):
    card = source.score([character(RED)])[0][0]
    assert not card.ok and "no reference images" in card.abstained
    card = source.score([character(RED)], ctx(str(tmp_path / "missing")))[0][0]
    assert not card.ok and "reference folder not found" in card.abstained


def test_references_are_bounded(source):
    refs = [character(RED, size=(40, 40), seed=s) for s in range(L.MAX_REFERENCES + 5)]
    card = source.score([character(RED)], ctx(refs))[0][0]
    assert card.extras["references"] == L.MAX_REFERENCES


def test_threshold_from_metrics_or_given(tmp_path):
    path = build_ccip(tmp_path / "m", threshold=0.3)
    src = L.LikenessSource(model_path=path)
    card = src.score([character(RED)], ctx([character(RED, seed=1)]))[0][0]
    assert card.extras["threshold"] == 0.3
    given = L.LikenessSource(model_path=path, threshold=0.1)
    assert given.score([character(RED)], ctx([character(RED)]))[0][0].extras["threshold"] == 0.1
    with pytest.raises(L.SourceError, match="threshold"):
        L.LikenessSource(model_path=path, threshold=1.5)
    src.unload()


@pytest.mark.parametrize(("metrics", "words"), [
    ({"f1_score": 0.9}, '"threshold" must be a number in (0, 1)'),
    ({"threshold": 7}, '"threshold" must be a number in (0, 1)'),
    ({"threshold": "0.2"}, '"threshold" must be a number in (0, 1)'),
])
def test_bad_metrics_make_it_abstain(tmp_path, metrics, words):
    path = build_ccip(tmp_path / "m", metrics=metrics)
    card = L.LikenessSource(model_path=path).score([character(RED)], ctx([character(RED)]))[0][0]
    assert not card.ok and words in card.abstained


def test_missing_metrics(tmp_path):
    path = build_ccip(tmp_path / "m")
    (path.parent / "metrics.json").unlink()
    card = L.LikenessSource(model_path=path).score([character(RED)], ctx([character(RED)]))[0][0]
    assert not card.ok and "metrics.json not found" in card.abstained


def test_bad_image_abstains_alone(source):
    result = source.score([np.full((50, 50, 3), np.nan, np.float32), character(RED)],
                          ctx([character(RED)]))
    assert not result[0][0].ok and result[1][0].ok
