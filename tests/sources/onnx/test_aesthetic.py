"""deepghs/anime_aesthetic on real onnxruntime with a stand-in in the repository's layout:
labels read by name from meta.json, the expected class mapped to its percentile through
samples.npz as imgutils does, confidence from the class spread, and every bad file refused."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from helpers.models.aesthetic_models import META_ORDER, build_anime_aesthetic, samples
from PIL import Image as PILImage

from scoring.sources.onnx.aesthetic import LABELS, AnimeAesthetic, Calibration, label_for


def colour(r: float, g: float, b: float, size=(120, 90)) -> np.ndarray:
    img = np.empty((*size, 3), np.float32)
    img[...] = (r, g, b)
    return img


def reference(folder, image: np.ndarray, size: int) -> float:
    """What imgutils computes for this image: its preprocessing, the probabilities by label,
    the expected index, the samples' percentile — independently of the source."""
    pil = PILImage.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    x = np.asarray(pil.resize((size, size), PILImage.BILINEAR), np.float32) / 255.0
    x = ((x - 0.5) / 0.5).transpose(2, 0, 1)[None]
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = sess.run(["output"], {"input": x.astype(np.float32)})[0][0]
    labels = json.loads((folder / "meta.json").read_text())["labels"]
    score = sum(probs[labels.index(name)] * i for i, name in enumerate(LABELS))
    table = np.load(folder / "samples.npz")["arr_0"]
    xs, ys = table
    s = np.clip(score, xs.min(), xs.max())
    idx = np.searchsorted(xs, s)
    if idx < xs.shape[0] - 1:
        x0, y0, x1, y1 = xs[idx], ys[idx], xs[idx + 1], ys[idx + 1]
        pct = ys[idx] if np.isclose(x1, x0) else np.clip(
            (s - x0) / (x1 - x0) * (y1 - y0) + y0, ys.min(), ys.max())
    else:
        pct = ys[idx]
    return float(pct) * 100.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_anime_aesthetic(tmp_path_factory.mktemp("aes") / "swinv2pv3_v0_448_ls0.2_x",
                                 size=64)


def test_the_percentile_is_imgutils_own_and_redder_is_better(model):
    images = [colour(0.9, 0.2, 0.1), colour(0.5, 0.5, 0.5), colour(0.1, 0.2, 0.9)]
    sheet = AnimeAesthetic(model_path=model, device="cpu").score(images)
    cards = [c[0] for c in sheet]
    assert all(c.ok for c in cards)
    for img, card in zip(images, cards, strict=True):
        assert card.axes["appeal"] == card.axes["overall"]
        assert card.axes["appeal"] == pytest.approx(reference(model, img, 64), abs=0.01)
    red, grey, blue = (c.axes["appeal"] for c in cards)
    assert red > grey > blue
    assert cards[0].extras["label"] == label_for(red / 100)
    assert set(cards[0].extras["probabilities"]) == set(LABELS)
    assert 0.0 < cards[1].confidence < cards[0].confidence <= 1.0   # grey is the unsure one


def test_the_model_sets_the_input_size(tmp_path):
    folder = build_anime_aesthetic(tmp_path / "caformer_s36_v0_ls0.2", size=96)
    source = AnimeAesthetic(model_path=folder / "model.onnx", device="cpu")
    img = colour(0.7, 0.3, 0.3)
    card = source.score([img])[0][0]
    assert source.size == (96, 96)
    assert card.axes["appeal"] == pytest.approx(reference(folder, img, 96), abs=0.01)


def test_a_fixed_batch_model_scores_a_batch_of_another_size(tmp_path):
    folder = build_anime_aesthetic(tmp_path / "fixed", size=32, batch=4)
    images = [colour(i / 6, 0.3, 1 - i / 6) for i in range(6)]
    sheet = AnimeAesthetic(model_path=folder, device="cpu", batch_size=3).score(images)
    values = [c[0].axes["appeal"] for c in sheet]
    assert values == sorted(values) and len(set(values)) == 6


def test_a_broken_image_abstains_alone(model):
    bad = colour(0.5, 0.5, 0.5)
    bad[:60] = np.nan
    sheet = AnimeAesthetic(model_path=model, device="cpu").score([colour(1, 0, 0), bad])
    assert sheet[0][0].ok and "NaN" in sheet[1][0].abstained


def test_calibration_edges_follow_imgutils():
    cal = Calibration(*samples(8))
    assert cal.percentile(-5) == pytest.approx(0.0)
    assert cal.percentile(99) == pytest.approx(1.0)
    flat = Calibration(np.array([0.0, 1.0, 1.0, 6.0]), np.array([0.0, 0.3, 0.6, 1.0]))
    assert flat.percentile(1.0) == pytest.approx(0.3)      # a flat step keeps the lower one
    assert label_for(0.96) == "masterpiece" and label_for(0.5) == "good"
    assert label_for(0.0) == "worst"


@pytest.mark.parametrize(("broken", "says"), [
    ("labels", "not the aesthetic classes"), ("no-samples", "samples.npz missing"),
    ("bad-samples", "sorted"), ("shape-samples", "2×K"), ("no-meta", "meta.json missing")])
def test_a_wrong_or_missing_file_abstains_saying_which(tmp_path, broken, says):
    folder = build_anime_aesthetic(tmp_path / "m", size=32)
    if broken == "labels":
        (folder / "meta.json").write_text(json.dumps({"labels": ["general", "sensitive"] * 3
                                                      + ["explicit"]}))
    elif broken == "no-samples":
        (folder / "samples.npz").unlink()
    elif broken == "bad-samples":
        np.savez(folder / "samples.npz", np.stack([np.linspace(6, 0, 8), np.linspace(0, 1, 8)]))
    elif broken == "shape-samples":
        np.savez(folder / "samples.npz", np.zeros((3, 8)))
    else:
        (folder / "meta.json").unlink()
    card = AnimeAesthetic(model_path=folder, device="cpu").score([colour(1, 0, 0)])[0][0]
    assert not card.ok and says in card.abstained


def test_an_output_that_is_not_a_distribution_is_never_a_score(tmp_path):
    from onnx import TensorProto, helper, numpy_helper, save_model

    folder = build_anime_aesthetic(tmp_path / "logits", size=32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "W"], ["output"])], "logits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 7])],
        [numpy_helper.from_array(np.full((3, 7), 3.0, np.float32), "W")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    save_model(m, folder / "model.onnx")
    card = AnimeAesthetic(model_path=folder, device="cpu").score([colour(1, 1, 1)])[0][0]
    assert not card.ok and "not a probability distribution" in card.abstained


def test_meta_order_is_not_score_order():
    assert META_ORDER[0] == "masterpiece" and LABELS[0] == "worst"
