"""CL Tagger v2 end to end on real onnxruntime with tiny models of the real I/O contract
(`pixel_values` NCHW → `logits`, weights in model.onnx.data, vocabulary and metrics files)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, save_truncated

from scoring.sources import create
from scoring.sources.onnx import cl as C

TAGS = [("red", "General"), ("blue", "General"), ("white background", "General"),
        ("hatsune miku", "Character"),
        ("general", "Rating"), ("sensitive", "Rating"), ("questionable", "Rating"),
        ("explicit", "Rating"),
        ("best quality", "Quality"), ("normal quality", "Quality"), ("bad quality", "Quality"),
        ("worst quality", "Quality")]
# per tag: logit = r·R + g·G + b·B + bias over the normalised channel means in −1…1
COEF = {
    "red": (4, -4, -4, -5), "blue": (-5, -5, 5, -5), "white background": (3, 3, 3, -4),
    "hatsune miku": (-4, 4, 4, -4),
    "general": (0, 3, 0, 0), "sensitive": (0, 0, 0, -6), "questionable": (2, 0, 0, -1),
    "explicit": (4, -4, 0, -4),
    "best quality": (0, 0, 3, 0), "normal quality": (0, 0, 0, 0), "bad quality": (3, 0, 0, 0),
    "worst quality": (0, 0, 0, -3),
}


def weights():
    m = np.array([COEF[t] for t, _ in TAGS], np.float32)
    return m[:, :3].T, m[:, 3]


def expected(r, g, b):
    wts, bias = weights()
    return 1 / (1 + np.exp(-(np.array([r, g, b]) @ wts + bias)))


def solid(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.float32), (h, w, 3)).copy()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    thr = np.full(len(TAGS), 0.5, np.float32)
    thr[0] = 0.9999       # red needs near certainty in per-tag mode
    thr[1] = np.nan       # blue falls back to the single threshold
    return build_cl(tmp_path_factory.mktemp("cl") / "cl_tagger_v2", TAGS, *weights(),
                    best_thr=thr)


def test_model_files_have_the_real_layout(model_dir):
    assert (model_dir / "model.onnx.data").stat().st_size > 0
    vocab = json.loads((model_dir / "model_vocabulary.json").read_text())
    assert {"idx_to_tag", "tag_to_category", "categories"} <= set(vocab)


def test_preprocessing_is_rgb_normalised_nchw_white_padded():
    x = C.prepare(solid(100, 50, (1.0, 0.0, 0.0)), 384)
    assert x.shape == (3, 384, 384) and x.dtype == np.float32
    assert np.allclose(x[:, :, :96], 1.0) and np.allclose(x[:, :, -96:], 1.0)   # white pads
    assert np.allclose(x[0, :, 96:288], 1.0) and np.allclose(x[1:, :, 96:288], -1.0)
    gray = C.prepare(solid(8, 8, (0.5, 0.5, 0.5)), 16)
    assert np.allclose(gray, 128 / 127.5 - 1, atol=1e-6)


def test_tags_ratings_quality_decoded(model_dir):
    src = create("cl", model_path=model_dir)
    images = [solid(40, 40, (1, 0, 0)), solid(20, 20, (1, 1, 1)), solid(60, 30, (0, 1, 1))]
    sheet = src.score(images)
    for img, cards in zip(images, sheet, strict=True):
        card = cards[0]
        assert card.ok and card.provides == ("erotic", "overall") and card.kind == "tagger"
        means = C.prepare(img, 384).astype(np.float64).mean(axis=(1, 2))
        p = expected(*means)
        prob = dict(zip([t for t, _ in TAGS], p, strict=True))
        assert card.extras["rating"] == pytest.approx(
            {r: prob[r] for r in ("general", "sensitive", "questionable", "explicit")}, abs=2e-3)
        e = 100 * prob["explicit"] + 60 * prob["questionable"] + 30 * prob["sensitive"]
        assert card.axes["erotic"] == pytest.approx(min(100.0, e), abs=0.3)
        q = {"best quality": 90, "normal quality": 60, "bad quality": 35, "worst quality": 10}
        want = sum(prob[k] * v for k, v in q.items()) / sum(prob[k] for k in q)
        assert card.axes["overall"] == pytest.approx(want, abs=0.2)
        tags = {t for t, c in TAGS if c in ("General", "Character") and prob[t] >= 0.55}
        assert set(card.tags) == tags
    assert set(sheet[0][0].tags) == {"red"}
    assert set(sheet[1][0].tags) == {"white background"}
    assert "hatsune miku" in sheet[2][0].extras["characters"]
    assert sheet[1][0].axes["overall"] > sheet[0][0].axes["overall"]   # blue-ish → best


def test_quality_formula():
    assert C.quality_score({"best quality": 1.0, "worst quality": 0.0}) == 90.0
    assert C.quality_score({"best_quality": 0.5, "worst_quality": 0.5}) == 50.0
    assert C.quality_score({"normal quality": 0.2, "bad quality": 0.2}) == 47.5
    assert C.quality_score({"odd quality": 0.9}) is None
    assert C.quality_score({}) is None


def test_per_tag_thresholds(model_dir):
    red = [solid(40, 40, (1, 0, 0)), solid(40, 40, (0, 0, 1))]
    single = create("cl", model_path=model_dir, threshold_mode="single").score(red)
    per = create("cl", model_path=model_dir, threshold_mode="per-tag").score(red)
    p_red = expected(1, -1, -1)[0]
    assert 0.55 < p_red < 0.9999
    assert "red" in single[0][0].tags and "red" not in per[0][0].tags
    assert "blue" in per[1][0].tags                     # NaN best_thr → single threshold
    with pytest.raises(Exception, match="threshold_mode"):
        create("cl", model_path=model_dir, threshold_mode="bogus")


def test_dynamic_batch_and_fixed_batch(tmp_path, model_dir):
    rng = np.random.default_rng(1)
    imgs = [rng.random((int(rng.integers(4, 50)), int(rng.integers(4, 50)), 3),
                       dtype=np.float32) for _ in range(5)]
    src = create("cl", model_path=model_dir, batch_size=2)
    sheet = src.score(imgs)
    assert src.model.fixed_batch is None and [len(r) for r in src.model.chunks(5, 2)] == [2, 2, 1]
    for img, cards in zip(imgs, sheet, strict=True):
        p = expected(*C.prepare(img).astype(np.float64).mean(axis=(1, 2)))
        assert list(cards[0].extras["rating"].values()) == pytest.approx(p[4:8], abs=2e-3)
    fixed = build_cl(tmp_path / "fixed", TAGS, *weights(), batch=1)
    again = create("cl", model_path=fixed, batch_size=4).score(imgs)
    for a, b in zip(sheet, again, strict=True):
        assert a[0].extras["rating"] == pytest.approx(b[0].extras["rating"], abs=2e-3)


def test_missing_external_data_file(tmp_path, model_dir):
    d = tmp_path / "noweights"
    shutil.copytree(model_dir, d)
    (d / "model.onnx.data").unlink()
    card = create("cl", model_path=d).score([solid(4, 4, (1, 0, 0))])[0][0]
    assert not card.ok and "model.onnx.data" in card.abstained


def test_mismatched_vocabulary_and_truncated_model(tmp_path, model_dir):
    d = tmp_path / "mismatch"
    shutil.copytree(model_dir, d)
    vocab = json.loads((d / "model_vocabulary.json").read_text())
    vocab["idx_to_tag"][str(len(TAGS))] = "extra tag"
    (d / "model_vocabulary.json").write_text(json.dumps(vocab))
    card = create("cl", model_path=d).score([solid(4, 4, (1, 0, 0))])[0][0]
    assert f"has {len(TAGS) + 1} tags" in card.abstained
    assert f"outputs {len(TAGS)}" in card.abstained
    t = tmp_path / "trunc"
    shutil.copytree(model_dir, t)
    save_truncated(model_dir / "model.onnx", t / "model.onnx")
    card = create("cl", model_path=t).score([solid(4, 4, (1, 0, 0))])[0][0]
    assert "truncated or corrupt" in card.abstained
    (t / "model_tag_metrics.npz").unlink()
    shutil.copy(model_dir / "model.onnx", t / "model.onnx")
    card = create("cl", model_path=t, threshold_mode="per-tag").score([solid(4, 4, (1, 0, 0))])
    assert "model_tag_metrics.npz" in card[0][0].abstained


def test_corrupt_image_inside_a_batch(model_dir):
    sheet = create("cl", model_path=model_dir).score(
        [solid(8, 8, (1, 0, 0)), np.full((9, 9, 3), np.inf, np.float32), solid(8, 8, (1, 1, 1))])
    assert [c[0].ok for c in sheet] == [True, False, True]
    assert "NaN/inf" in sheet[1][0].abstained and set(sheet[2][0].tags) == {"white background"}
