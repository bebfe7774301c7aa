"""The `censor` source on stand-in YOLO models with the real I/O contract (`images` →
`output0`, deepghs/anime_censor_detection's folder layout) whose detections follow drawn
markers: regions found, measured and judged against the run's rule, NudeNet's regions added,
bad label files and bad images handled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.censor_images import (
    as_float,
    mark,
    paint_bar,
    paint_blur,
    paint_mosaic,
    scene,
)
from helpers.models.yolo_models import build_censor, build_nudenet

from scoring.publish import apply_mosaic, rule_for
from scoring.sources.onnx import censor as C
from scoring.sources.onnx import session as onnx_session


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("censor")
    return {
        "s": build_censor(root / "censor_detect_v1.0_s"),                   # 640, batch 1
        "dyn": build_censor(root / "dynamic", size=320, batch="batch"),
        "pussy_only": build_censor(root / "pussy_only", size=320, markers=[("pussy", 2)]),
        "nudenet": build_nudenet(root / "nudenet" / "320n.onnx"),
    }


@pytest.fixture(scope="module")
def source(models):
    src = C.CensorSource(model_path=models["s"].parent, nudenet=False)
    yield src
    src.unload()


def _publish(result, i=0):
    card = result[i][0]
    assert card.ok, card.abstained
    return card.extras["publish"]


BOX = (300, 420, 460, 540)


def test_regions_follow_the_drawn_markers(source):
    img = mark(mark(scene(1001, 700), BOX, "pussy"), (100, 100, 160, 150), "nipple_f")
    card = source.score([as_float(img)])[0][0]
    assert card.ok and card.kind == "detector" and card.axes == {} and card.provides == ()
    regions = card.extras["publish"]["regions"]
    assert len(regions) == 1 and regions[0]["label"] == "pussy"
    assert regions[0]["detector"] == "censor"
    assert np.allclose(regions[0]["box"], BOX, atol=3)   # through the 640 square and back
    assert {d["class"] for d in card.extras["detections"]} == {"pussy", "nipple_f"}
    assert card.tags["pussy"] == pytest.approx(0.9)
    json.dumps(card.to_dict())                            # the report and PNGs carry it


@pytest.mark.parametrize(("size", "needed"), [((1001, 700), 11), ((768, 1344), 14),
                                             ((512, 512), 6)])
def test_each_cover_gets_the_rules_verdict(source, size, needed):
    h, w = size
    box = (w // 3, h // 2, w // 3 + 150, h // 2 + 110)
    base = mark(scene(h, w, seed=w), box)
    cases = {
        "bare": (base, "needs work", "nothing covers it"),
        "fine": (paint_mosaic(base, box, 3, (1, 2)), "needs work",
                 f"mosaic too fine (3 px found, {needed} px needed)"),
        "ok": (paint_mosaic(base, box, needed, (0, 0)), "publishable", f"mosaic {needed} px"),
        "shifted": (paint_mosaic(base, box, needed + 2, (5, 3)), "publishable", "mosaic"),
        "bar": (paint_bar(base, box, "black", inset=2), "publishable", "black bar"),
        "white": (paint_bar(base, box, "white", inset=2), "publishable", "white bar"),
        "blur": (paint_blur(base, box, 8), "needs work", "blurred, not a mosaic"),
    }
    result = source.score([as_float(img) for img, _, _ in cases.values()])
    for i, (name, (_, status, words)) in enumerate(cases.items()):
        p = _publish(result, i)
        assert p["needed"] == needed, name
        assert p["status"] == status, (name, p["summary"])
        if name in ("bar", "white"):  # a bar hides the marker: the stand-in sees its rim
            assert words in p["regions"][0]["reason"], name
        else:
            assert words in p["summary"] or words in p["regions"][0]["reason"], name


def test_no_region_is_publishable(source):
    p = _publish(source.score([as_float(scene(600, 400))]))
    assert p["status"] == "publishable" and p["regions"] == []


def test_the_rule_is_a_run_option_never_stored(source):
    img = as_float(paint_mosaic(mark(scene(1001, 700), BOX), BOX, 12))
    strict = source.score([img], _ctx({"rule": "strict x2"}))
    plain = source.score([img])
    custom = source.score([img], _ctx({"rule": "custom", "divisor": 50, "minimum": 8}))
    assert _publish(strict)["status"] == "needs work" and _publish(strict)["needed"] == 22
    assert _publish(plain)["status"] == "publishable" and _publish(plain)["needed"] == 11
    assert _publish(custom)["needed"] == 21 and _publish(custom)["status"] == "needs work"
    assert source.defaults.rule == "1/100"
    bad = source.score([img], _ctx({"rule": "1/7"}))[0][0]
    assert not bad.ok and "unknown mosaic rule" in bad.abstained


def _ctx(options):
    from scoring.sources import ScoreContext
    return ScoreContext(options=options)


def test_saiten_mosaic_output_passes_its_own_check(source):
    """Detected regions mosaicked by the rule (blocks on the image grid, padded) → the
    check on the result says publishable, for both presets and several sizes."""
    for h, w in ((1001, 700), (1344, 768)):
        box = (w // 3, h // 2, w // 3 + 140, h // 2 + 100)
        img = mark(mark(scene(h, w), box, "pussy"), (40, 60, 140, 130), "penis")
        first = _publish(source.score([as_float(img)]))
        assert first["status"] == "needs work" and len(first["regions"]) == 2
        for preset in ("1/100", "strict x2"):
            block = rule_for(preset).block_for(w, h)
            fixed = apply_mosaic(img, [r["box"] for r in first["regions"]], block, 0.1)
            again = _publish(source.score([as_float(fixed)], _ctx({"rule": preset})))
            assert again["status"] == "publishable", again["summary"]
            assert [r["cover"]["block"] for r in again["regions"]] == [block, block]
            assert [r["cover"]["grid"] for r in again["regions"]] == [[0, 0], [0, 0]]


def test_fixed_and_dynamic_batch_models_agree(models, source):
    imgs = [as_float(mark(scene(700, 500, seed=s), (100 + s * 20, 200, 260, 330)))
            for s in range(3)]
    dyn = C.CensorSource(model_path=models["dyn"], nudenet=False, batch_size=2)
    a, b = source.score(imgs), dyn.score(imgs)
    assert [_publish(a, i)["status"] for i in range(3)] == \
        [_publish(b, i)["status"] for i in range(3)]
    for i in range(3):
        ra, rb = _publish(a, i)["regions"][0]["box"], _publish(b, i)["regions"][0]["box"]
        assert np.allclose(ra, rb, atol=4)
    assert dyn.model.fixed_batch is None and source.model.fixed_batch == 1
    dyn.unload()


def test_nudenet_adds_realistic_regions_and_merges_duplicates(models):
    src = C.CensorSource(model_path=models["pussy_only"], nudenet_path=models["nudenet"])
    img = mark(mark(scene(900, 700), BOX, "pussy"), (60, 80, 200, 190), "penis")
    card = src.score([as_float(img)])[0][0]
    regions = card.extras["publish"]["regions"]
    assert [(r["label"], r["detector"]) for r in regions] == [
        ("MALE_GENITALIA_EXPOSED", "nudenet"), ("pussy", "censor+nudenet")]
    assert "NudeNet" in src.describe() and "nudenet" in {d.get("detector") for d in
                                                          card.extras["detections"]}
    src.unload()
    assert not src.nudenet.loaded


def test_real_nudenet_runs_beside_the_anime_detector(models):
    """The default: NudeNet's own 320n.onnx from the wheel (it finds nothing on drawings)."""
    src = C.CensorSource(model_path=models["dyn"])
    card = src.score([as_float(mark(scene(640, 480), (100, 100, 220, 200)))])[0][0]
    assert card.ok and src.nudenet.model_path.name == "320n.onnx"
    assert [r["detector"] for r in card.extras["publish"]["regions"]] == ["censor"]
    src.unload()


def test_labels_from_metadata_when_no_artifacts(tmp_path):
    path = build_censor(tmp_path / "m", size=320)
    (path.parent / "model_artifacts.json").unlink()
    src = C.CensorSource(model_path=path, nudenet=False)
    card = src.score([as_float(mark(scene(400, 400), (50, 60, 150, 160)))])[0][0]
    assert card.ok and src.names == ("nipple_f", "penis", "pussy")
    src.unload()


@pytest.mark.parametrize(("artifacts", "words"), [
    ({"names": ["a", "b", "c", "d"]}, "does not belong to this model"),
    ({"nc": 3}, 'no class list under "names"'),
    ({"names": {"0": "x", "2": "y"}}, 'no class list under "names"'),
])
def test_bad_label_files_make_it_abstain(tmp_path, artifacts, words):
    path = build_censor(tmp_path / "m", size=320, artifacts=artifacts)
    src = C.CensorSource(model_path=path, nudenet=False)
    card = src.score([as_float(scene(200, 200))])[0][0]
    assert not card.ok and words in card.abstained
    src.unload()


def test_unreadable_and_huge_label_files(tmp_path):
    path = build_censor(tmp_path / "m", size=320)
    (path.parent / "model_artifacts.json").write_text("{not json", encoding="utf-8")
    card = C.CensorSource(model_path=path, nudenet=False).score([as_float(scene(99, 99))])[0][0]
    assert not card.ok and "not readable as a model_artifacts.json" in card.abstained
    (path.parent / "model_artifacts.json").write_bytes(b" " * (C.MAX_JSON + 1))
    card = C.CensorSource(model_path=path, nudenet=False).score([as_float(scene(99, 99))])[0][0]
    assert not card.ok and "larger than" in card.abstained
    onnx_session.clear()


def test_bad_images_abstain_alone(source):
    broken = np.full((300, 300, 3), np.nan, np.float32)
    good = as_float(scene(300, 300))
    result = source.score([broken, good, np.zeros((5, 5), np.float32)])
    assert not result[0][0].ok and "NaN" in result[0][0].abstained
    assert result[1][0].ok and not result[2][0].ok


def test_bad_build_options():
    with pytest.raises(C.SourceError, match="conf_threshold"):
        C.CensorSource(model_path="x.onnx", conf_threshold=0, nudenet=False)


def test_yolo_decoding_matches_the_reference_steps():
    """imgutils' steps by hand: filter on the best class score, xywh → xyxy, NMS, scale."""
    out = np.zeros((7, 5), np.float32)
    out[:4, 0], out[4:, 0] = (320, 320, 100, 50), (0.1, 0.2, 0.8)       # pussy
    out[:4, 1], out[4:, 1] = (322, 321, 100, 50), (0.1, 0.7, 0.1)       # duplicate → NMS
    out[:4, 2], out[4:, 2] = (100, 100, 40, 40), (0.2, 0.1, 0.1)        # under conf
    out[:4, 3], out[4:, 3] = (630, 10, 40, 40), (0.6, 0.0, 0.0)         # clipped at the edge
    out[:, 4] = np.nan                                                    # ignored
    dets = C.detections(out, ("nipple_f", "penis", "pussy"), 1280, 960, 640, 0.25, 0.7)
    assert dets == [
        {"class": "pussy", "score": 0.8, "box": [540, 442, 740, 518]},
        {"class": "nipple_f", "score": 0.6, "box": [1220, 0, 1280, 45]},
    ]
    with pytest.raises(C.SourceError, match="expected 7"):
        C.detections(out[:6], ("nipple_f", "penis", "pussy"), 10, 10, 640, 0.25, 0.7)


def test_merge_joins_overlaps_and_orders_regions():
    R = C.Region
    merged = C.merge([R((10, 10, 50, 50), "pussy", 0.6, "censor"),
                      R((12, 8, 55, 52), "FEMALE_GENITALIA_EXPOSED", 0.9, "nudenet"),
                      R((0, 100, 20, 120), "penis", 0.5, "censor")])
    assert merged == [R((10, 8, 55, 52), "FEMALE_GENITALIA_EXPOSED", 0.9, "nudenet+censor"),
                      R((0, 100, 20, 120), "penis", 0.5, "censor")]
