"""NudeNet: the body-part detector `320n.onnx` shipped in the `nudenet` wheel → `erotic`.

The offline default that needs no download. The model file is located without importing
`nudenet` (its `__init__` imports OpenCV); pre- and post-processing are ours, in numpy,
matching nudenet 3.4.2 (`nudenet.py`): pad bottom/right to a square with black, resize to
320, RGB/255 NCHW; YOLOv8 rows (cx, cy, w, h, 18 class scores), score ≥ 0.2, boxes scaled
back to the original pixels and clipped, then class-agnostic NMS (score 0.25, IoU 0.45).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ...core.cards import ScoreCard
from ...core.errors import SourceError
from ...core.images import Image
from ...host.runtimes import nudenet_model
from ..spec import Spec
from .base import OnnxSource, uint8_image

LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
    "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
    "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""The detector's classes in output order (nudenet 3.4.2)."""

EXPLICITNESS: dict[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 1.0, "MALE_GENITALIA_EXPOSED": 1.0, "ANUS_EXPOSED": 1.0,
    "FEMALE_BREAST_EXPOSED": 0.6, "BUTTOCKS_EXPOSED": 0.5,
    "FEMALE_GENITALIA_COVERED": 0.3, "ANUS_COVERED": 0.25,
    "FEMALE_BREAST_COVERED": 0.2, "BUTTOCKS_COVERED": 0.2,
    "BELLY_EXPOSED": 0.15, "MALE_BREAST_EXPOSED": 0.1, "ARMPITS_EXPOSED": 0.1,
    "BELLY_COVERED": 0.05, "FEET_EXPOSED": 0.05, "ARMPITS_COVERED": 0.03,
    "FEET_COVERED": 0.0, "FACE_FEMALE": 0.0, "FACE_MALE": 0.0,
}
"""How explicit each detected part is, 0–1: exposed genitalia/anus ≫ exposed breasts/buttocks
≫ covered intimate parts > belly/armpits ≫ feet/faces (nothing)."""

SIZE = 320
MIN_SCORE, NMS_SCORE, NMS_IOU = 0.2, 0.25, 0.45


def explicitness(tags: dict[str, float]) -> float:
    """The erotic axis from the best score per class, a noisy-OR of weighted evidence:
    100 · (1 − Π_c (1 − w_c · s_c)). One exposed genitalia at 0.9 gives 90; covered
    breasts at 0.8 give 16; faces and feet give 0; more evidence only adds."""
    keep = 1.0
    for name, s in tags.items():
        keep *= 1.0 - EXPLICITNESS.get(name, 0.0) * float(s)
    return round(100.0 * (1.0 - keep), 2)


def model_file() -> Path:
    """`320n.onnx` inside the installed `nudenet` package (`runtimes.nudenet_model`, which
    never imports it), or a SourceError saying how to install it."""
    path = nudenet_model()
    if path is not None:
        return path
    if importlib.util.find_spec("nudenet") is None:
        raise SourceError(
            "NudeNet's model is not installed: run install.py in the ComfyUI-Saiten folder with "
            "ComfyUI's Python, or pip install --no-deps nudenet (without --no-deps its "
            "dependencies replace onnxruntime-gpu and opencv-python)")
    raise SourceError("the nudenet package has no 320n.onnx: "
                      "pip install --force-reinstall --no-deps nudenet")


def prepare(image: Image, size: int = SIZE) -> tuple[np.ndarray, tuple[int, int, int]]:
    """RGB 0–1 HxWx3 → (3×size×size float32, (width, height, side)): scaled so its long
    side is `size`, top-left on black, /255 — nudenet's blob, without a full-size pad."""
    img = uint8_image(image)
    h, w = img.shape[:2]
    side = max(h, w)
    nw, nh = max(1, round(w * size / side)), max(1, round(h * size / side))
    small = np.asarray(PILImage.fromarray(img).resize((nw, nh), PILImage.Resampling.BILINEAR))
    blob = np.zeros((size, size, 3), np.float32)
    blob[:nh, :nw] = small
    return (blob * (1.0 / 255.0)).transpose(2, 0, 1), (w, h, side)


def nms(boxes: np.ndarray, scores: np.ndarray, score_thr: float = NMS_SCORE,
        iou_thr: float = NMS_IOU) -> list[int]:
    """Greedy class-agnostic NMS over (x, y, w, h) boxes, like cv2.dnn.NMSBoxes."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= score_thr]
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep: list[int] = []
    idx = np.array(order, dtype=np.int64)
    while idx.size:
        i, rest = idx[0], idx[1:]
        keep.append(int(i))
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        idx = rest[iou <= iou_thr]
    return keep


def detections(output: np.ndarray, width: int, height: int, side: int,
               size: int = SIZE) -> list[dict[str, Any]]:
    """One image's raw output (4 + classes, anchors) → detections in original pixels."""
    rows = np.asarray(output, np.float32).T
    cls_scores = rows[:, 4:]
    best = cls_scores.max(axis=1)
    rows, cls_scores, best = rows[best >= MIN_SCORE], cls_scores[best >= MIN_SCORE], \
        best[best >= MIN_SCORE]
    if not len(rows):
        return []
    scale = side / size
    w, h = rows[:, 2] * scale, rows[:, 3] * scale
    x = np.clip((rows[:, 0] - rows[:, 2] / 2) * scale, 0, width)
    y = np.clip((rows[:, 1] - rows[:, 3] / 2) * scale, 0, height)
    w, h = np.minimum(w, width - x), np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    classes = cls_scores.argmax(axis=1)
    return [{"class": LABELS[classes[i]], "score": round(float(best[i]), 4),
             "box": [int(v) for v in boxes[i]]} for i in nms(boxes, best)]


class NudeNetSource(OnnxSource):
    """Exposed/covered body-part detections → the `erotic` axis (see `explicitness`)."""

    spec = Spec("nudenet", "detector", ("erotic",), 0.6, build={"batch_size": 8})

    def __init__(self, *, model_path: str | Path | None = None, **kw: Any) -> None:
        super().__init__(model_path=model_path or model_file(), **kw)

    def check_model(self, model: Any) -> None:
        model.require_input(None, (None, 3, None, None))

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image)

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        out = outputs[0]
        if out.ndim != 3 or out.shape[1] != 4 + len(LABELS):
            raise SourceError(f"unexpected NudeNet output shape {out.shape}; "
                              f"expected (N, {4 + len(LABELS)}, anchors)")
        cards = []
        for row, (w, h, side) in zip(out, metas, strict=True):
            dets = detections(row, w, h, side)
            tags: dict[str, float] = {}
            for d in dets:
                tags[d["class"]] = max(tags.get(d["class"], 0.0), d["score"])
            value = explicitness(tags)
            cards.append(self.card(axes={"erotic": value}, tags=tags,
                                   extras={"detections": dets, "explicitness": value}))
        return cards
