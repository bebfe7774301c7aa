"""WD v3 tagger end to end on real onnxruntime with tiny models of the real I/O contract."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.models.onnx_models import RATINGS, build_wd, save_truncated

from scoring.sources import create
from scoring.sources.onnx import wd as W

# per tag: logit = b·B + g·G + r·R + bias over the image's channel means in 0–1
COEF = {
    "general": (0, 6, 0, -3), "sensitive": (0, 0, 0, -10), "questionable": (0, 0, 4, -2),
    "explicit": (0, -8, 8, -4),
    "red": (0, -10, 10, -2), "blue": (10, -10, -10, -2), "white_background": (6, 6, 0, -8),
    "hatsune_miku": (8, 8, -16, -4),
}
TAGS = [(r, 9) for r in RATINGS] + [("red", 0), ("blue", 0), ("white_background", 0),
                                     ("hatsune_miku", 4)]


def weights():
    m = np.array([COEF[n] for n, _ in TAGS], np.float32)
    return m[:, :3].T, m[:, 3]


def expected(b, g, r):
    """What the model must output for channel means (B, G, R) in 0–1."""
    wts, bias = weights()
    return 1 / (1 + np.exp(-(np.array([b, g, r]) @ wts + bias)))


def solid(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.float32), (h, w, 3)).copy()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_wd(tmp_path_factory.mktemp("wd") / "wd-tiny-v3", TAGS, *weights())


@pytest.fixture
def tagger(model_dir):
    src = create("wd", model_path=model_dir, batch_size=2)
    yield src
    src.unload()


def test_preprocessing_is_bgr_white_padded_and_sized():
    img = solid(100, 50, (1.0, 0.0, 0.0))                  # tall pure red
    x = W.prepare(img, 448)
    assert x.shape == (448, 448, 3) and x.dtype == np.float32
    assert np.all(x[:, :112] == 255) and np.all(x[:, -112:] == 255)     # white side pads
    assert np.all(x[:, 112:336] == [0, 0, 255])            # BGR order, 0–255
    wide = W.prepare(solid(10, 40, (0.0, 0.0, 1.0)), 64)
    assert np.all(wide[:24] == 255) and np.all(wide[24:40] == [255, 0, 0])


def test_tags_ratings_and_erotic_decoded_against_the_csv(tagger):
    red, white, teal = solid(64, 64, (1, 0, 0)), solid(30, 30, (1, 1, 1)), solid(9, 9, (0, 1, 1))
    tall_red = solid(100, 50, (1, 0, 0))
    sheet = tagger.score([red, white, teal, tall_red])
    cards = [c[0] for c in sheet]
    assert all(c.ok and c.kind == "tagger" and c.provides == ("erotic",) for c in cards)
    for card, means in zip(cards, [(0, 0, 1), (1, 1, 1), (1, 1, 0), (0.5, 0.5, 1)],
                           strict=True):
        p = expected(*means)
        assert card.extras["rating"] == pytest.approx(dict(zip(RATINGS, p[:4], strict=True)),
                                                      abs=2e-3)
        e = 100 * p[3] + 60 * p[2] + 30 * p[1]
        assert card.axes["erotic"] == pytest.approx(min(100, e), abs=0.3)
        want = {n for (n, cat), q in zip(TAGS, p, strict=True)
                if (cat == 0 and q >= 0.35) or (cat == 4 and q >= 0.85)}
        assert set(card.tags) == want
    assert set(cards[0].tags) == {"red"} and cards[0].axes["erotic"] == 100.0
    assert set(cards[1].tags) == {"white_background"}
    assert cards[2].extras["characters"].keys() == {"hatsune_miku"}
    assert "rating" not in cards[0].tags and "explicit" not in cards[0].tags
    assert tagger.provider == "CPUExecutionProvider" and tagger.size == 448


def test_thresholds_and_mcut(model_dir):
    teal = solid(8, 8, (0, 1, 1))
    p = expected(1, 1, 0)
    strict = create("wd", model_path=model_dir, general_threshold=0.99,
                    character_threshold=0.99999999)
    assert strict.score([teal])[0][0].tags == {}
    assert W.mcut_threshold(np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx(0.5)
    mc = create("wd", model_path=model_dir, mcut=True).score([teal])[0][0]
    gen = p[4:7]
    assert mc.extras["thresholds"]["general"] == pytest.approx(W.mcut_threshold(gen), abs=1e-3)
    assert mc.extras["thresholds"]["character"] == pytest.approx(0.5)  # one tag: mcut = 0.5
    assert "hatsune_miku" in mc.tags


def test_dynamic_batch_in_chunks_matches_one_by_one(model_dir):
    rng = np.random.default_rng(0)
    imgs = [rng.random((rng.integers(5, 80), rng.integers(5, 80), 3), dtype=np.float32)
            for _ in range(5)]
    src = create("wd", model_path=model_dir, batch_size=2)
    batched = src.score(imgs)
    assert len(batched) == 5 and src.model.fixed_batch is None
    for img, cards in zip(imgs, batched, strict=True):
        bgr = W.prepare(img, 448).astype(np.float64).mean(axis=(0, 1)) / 255
        p = expected(*bgr)   # float32 reductions in onnxruntime differ slightly by batch
        assert list(cards[0].extras["rating"].values()) == pytest.approx(p[:4], abs=2e-3)


def test_fixed_batch_one_model(tmp_path):
    d = build_wd(tmp_path / "fixed", TAGS, *weights(), batch=1)
    sheet = create("wd", model_path=d / "model.onnx", batch_size=8).score(
        [solid(8, 8, (1, 0, 0)), solid(8, 8, (1, 1, 1)), solid(8, 8, (0, 1, 1))])
    assert [set(c[0].tags) for c in sheet] == [
        {"red"}, {"white_background"}, {"hatsune_miku", "white_background"}]


def test_flat_pair_layout_like_the_wd14_node(tmp_path, model_dir):
    (tmp_path / "mine.onnx").write_bytes((model_dir / "model.onnx").read_bytes())
    (tmp_path / "mine.csv").write_bytes((model_dir / "selected_tags.csv").read_bytes())
    card = create("wd", model_path=tmp_path / "mine.onnx").score([solid(4, 4, (1, 0, 0))])[0][0]
    assert set(card.tags) == {"red"}


def test_mismatched_csv_is_a_clear_error_naming_both_numbers(tmp_path):
    d = build_wd(tmp_path / "bad", TAGS, *weights(), csv_rows=len(TAGS) + 3)
    card = create("wd", model_path=d).score([solid(4, 4, (1, 0, 0))])[0][0]
    assert not card.ok and f"has {len(TAGS) + 3} tags" in card.abstained
    assert f"outputs {len(TAGS)}" in card.abstained


def test_truncated_onnx_and_missing_csv(tmp_path, model_dir):
    save_truncated(model_dir / "model.onnx", tmp_path / "t" / "model.onnx")
    (tmp_path / "t" / "selected_tags.csv").write_bytes((model_dir / "selected_tags.csv")
                                                      .read_bytes())
    sheet = create("wd", model_path=tmp_path / "t").score([solid(4, 4, (1, 0, 0))] * 2)
    assert all("truncated or corrupt" in c[0].abstained for c in sheet)
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes())
    card = create("wd", model_path=tmp_path / "n").score([solid(4, 4, (1, 0, 0))])[0][0]
    assert "label file not found" in card.abstained and "selected_tags.csv" in card.abstained


def test_corrupt_image_inside_a_batch(tagger):
    bad = np.full((20, 20, 3), np.nan, np.float32)
    sheet = tagger.score([solid(8, 8, (1, 0, 0)), bad, np.zeros((3, 4, 5), np.float32),
                          solid(8, 8, (1, 1, 1))])
    assert [c[0].ok for c in sheet] == [True, False, False, True]
    assert set(sheet[3][0].tags) == {"white_background"}


def test_label_file_parsed_once(model_dir):
    W._read_labels.cache_clear()
    for _ in range(3):
        create("wd", model_path=model_dir).score([solid(4, 4, (1, 0, 0))])
    assert W._read_labels.cache_info().misses == 1


def test_transparent_rgba_is_composited_over_white(tagger):
    from scoring.core.images import as_rgb
    clear = np.zeros((16, 16, 4), np.uint8)            # fully transparent black
    card = tagger.score([as_rgb(clear)])[0][0]
    assert set(card.tags) == {"white_background"}
