"""`censor`: where an image must be obscured, and whether it is — the publish check.

Regions: deepghs/anime_censor_detection (YOLOv8, `censor_detect_v1.0_{s,n}/model.onnx` +
`model_artifacts.json`; reference deepghs/imgutils `detect/censor.py` over
`generic/yolo.py`): the image resized to the model's `imgsz` square (640; bicubic, no
letterbox), RGB/255 NCHW as `images`; `output0` [N, 4 + classes, anchors] holds (cx, cy, w,
h) in that square then one score per class; rows whose best score passes `conf_threshold`
go through class-agnostic NMS (`iou_threshold`) and are scaled back to the image. Labels come
from `model_artifacts.json` (`names`), else the model's metadata. NudeNet's exposed-genital
classes (its 320n.onnx, run as the `nudenet` source runs it) add realistic images.

Each region of a class that must be obscured is measured (`scoring.publish`) and judged
against the run's rule; the card carries the verdict in `extras["publish"]` and votes on no
axis: a great image that needs a mosaic keeps its score (the filter routes it).
"""

from __future__ import annotations

import ast
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ...core.cards import ScoreCard, Sheet
from ...core.errors import SourceError
from ...core.images import Image
from ...publish import Region, judge, measure, rule_for
from ...publish.rules import unchecked
from ..base import Result, ScoreContext
from ..spec import Model, RunOptions, Spec
from .base import OnnxSource, uint8_image
from .nudenet import NudeNetSource, nms

REPO = "deepghs/anime_censor_detection"
FILES = ("model.onnx", "model_artifacts.json")
REQUIRED = ("penis", "pussy")
"""The anime detector's classes stores require obscured (nipple_f is detected, not required)."""
NUDENET_REQUIRED = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED")
MAX_JSON = 1 << 20
MERGE_IOU = 0.3
"""Regions overlapping more than this (the two detectors on one spot) become one."""


@dataclass(frozen=True)
class CensorOptions(RunOptions):
    """The rule each image is judged by: a preset ("1/100", "strict x2") or "custom" with
    `divisor` and `minimum`; `min_cover` the share of each region that must be obscured."""

    rule: str = "1/100"
    divisor: int = 100
    minimum: int = 4
    min_cover: float = 0.9


def _model(name: str) -> Model:
    return Model(name, "censor", repo=REPO, files=FILES, subfolder=name, folder=name,
                 vram="small (YOLOv8)", licence="mit")


SPEC = Spec(
    "censor", "detector", (), 0.0, options=CensorOptions,
    build={"conf_threshold": 0.25, "iou_threshold": 0.7, "nudenet": True,
           "batch_size": 8, "device": "auto"},
    choices={"rule": ("1/100", "strict x2", "custom")},
    models=(_model("censor_detect_v1.0_s"), _model("censor_detect_v1.0_n")),
    facts={"default_model": "censor_detect_v1.0_s", "required": REQUIRED,
           "nudenet_required": NUDENET_REQUIRED},
)
"""conf 0.25: below imgutils' 0.3 and near the model card's F1 thresholds (0.238 s, 0.278 n) —
a missed region costs more than an extra one."""


def read_json(path: Path, what: str) -> Any:
    """A small JSON file, bounded; SourceError naming it otherwise."""
    try:
        if path.stat().st_size > MAX_JSON:
            raise SourceError(f"{path.name} is larger than {MAX_JSON >> 10} KiB: not {what}")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SourceError(f"{path.name}: not readable as {what}: {e}") from e


def _names(raw: Any) -> tuple[str, ...] | None:
    """Class names from a list, or a {index: name} mapping numbered 0…n−1."""
    if isinstance(raw, list | tuple) and all(isinstance(n, str) for n in raw):
        return tuple(raw)
    if isinstance(raw, dict):
        try:
            pairs = sorted((int(k), str(v)) for k, v in raw.items())
        except (TypeError, ValueError):
            return None
        if [k for k, _ in pairs] == list(range(len(pairs))):
            return tuple(v for _, v in pairs)
    return None


def labels_for(model: Path, metadata: dict[str, str]) -> tuple[str, ...]:
    """The classes in output order: `model_artifacts.json` beside the model, else the
    `names` the exporter wrote into the model's metadata."""
    artifacts = model.parent / "model_artifacts.json"
    if artifacts.is_file():
        data = read_json(artifacts, "a model_artifacts.json")
        names = _names(data.get("names") if isinstance(data, dict) else None)
        if not names:
            raise SourceError(f"{artifacts}: no class list under \"names\"")
        return names
    raw = metadata.get("names", "")
    try:
        names = _names(ast.literal_eval(raw)) if 0 < len(raw) <= MAX_JSON else None
    except (ValueError, SyntaxError):
        names = None
    if not names:
        raise SourceError(f"{model.parent}: no model_artifacts.json and no class names in "
                          f"{model.name}'s metadata; download both files of the model")
    return names


def _imgsz(metadata: dict[str, str], shape: list[Any]) -> int:
    """The square side the model takes: its fixed input size, else the exporter's imgsz."""
    h, w = shape[2:4] if len(shape) == 4 else (None, None)
    if isinstance(h, int) and isinstance(w, int) and h == w and h > 0:
        return h
    try:
        size = json.loads(metadata.get("imgsz", "640"))
        size = size[0] if isinstance(size, list) else size
        return int(size) if 32 <= int(size) <= 4096 else 640
    except (ValueError, TypeError, IndexError):
        return 640


def prepare(image: Image, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB 0–1 HxWx3 → (3×size×size float32 RGB/255, (width, height)): resized to the
    square (bicubic), as imgutils does."""
    img = uint8_image(image)
    h, w = img.shape[:2]
    small = np.asarray(PILImage.fromarray(img).resize((size, size),
                                                       PILImage.Resampling.BICUBIC))
    return (small.astype(np.float32) / 255.0).transpose(2, 0, 1), (w, h)


def detections(output: np.ndarray, names: tuple[str, ...], width: int, height: int, size: int,
               conf: float, iou: float) -> list[dict[str, Any]]:
    """One image's `output0` (4 + classes, anchors) → detections in image pixels."""
    rows = np.asarray(output, np.float32)
    if rows.ndim != 2 or rows.shape[0] != 4 + len(names):
        raise SourceError(f"output0 has {rows.shape[0] if rows.ndim == 2 else rows.shape} rows"
                          f" but the labels name {len(names)} classes (expected "
                          f"{4 + len(names)}): the label file does not belong to this model")
    rows = rows[:, np.isfinite(rows).all(axis=0)].T
    best = rows[:, 4:].max(axis=1) if rows.size else np.zeros(0)
    rows, best = rows[best > conf], best[best > conf]
    if not len(rows):
        return []
    sx, sy = width / size, height / size
    x0 = np.clip((rows[:, 0] - rows[:, 2] / 2) * sx, 0, width)
    y0 = np.clip((rows[:, 1] - rows[:, 3] / 2) * sy, 0, height)
    x1 = np.clip((rows[:, 0] + rows[:, 2] / 2) * sx, 0, width)
    y1 = np.clip((rows[:, 1] + rows[:, 3] / 2) * sy, 0, height)
    keep = nms(np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), best, conf, iou)
    classes = rows[:, 4:].argmax(axis=1)
    return [{"class": names[classes[i]], "score": round(float(best[i]), 4),
             "box": [round(float(v)) for v in (x0[i], y0[i], x1[i], y1[i])]} for i in keep]


def _iou(a: list[int], b: list[int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge(regions: list[Region]) -> list[Region]:
    """Overlapping regions (IoU > MERGE_IOU) as one: their union, the first's label, the
    best score; the rest in reading order (top to bottom, left to right)."""
    out: list[Region] = []
    for r in sorted(regions, key=lambda r: -r.score):
        for i, o in enumerate(out):
            if _iou(list(o.box), list(r.box)) > MERGE_IOU:
                box = (min(o.box[0], r.box[0]), min(o.box[1], r.box[1]),
                       max(o.box[2], r.box[2]), max(o.box[3], r.box[3]))
                detector = o.detector if r.detector in o.detector.split("+") \
                    else f"{o.detector}+{r.detector}"
                out[i] = replace(o, box=box, detector=detector)
                break
        else:
            out.append(r)
    return sorted(out, key=lambda r: (r.box[1], r.box[0]))


class CensorSource(OnnxSource):
    """The publish check: censor regions found, measured and judged (see the module)."""

    spec = SPEC

    def __init__(self, *, model_path: str | Path,
                 conf_threshold: float = SPEC.build["conf_threshold"],
                 iou_threshold: float = SPEC.build["iou_threshold"],
                 nudenet: bool = SPEC.build["nudenet"], nudenet_path: str | Path = "",
                 **kw: Any) -> None:
        path = Path(model_path)
        path = path / "model.onnx" if path.is_dir() else path
        super().__init__(model_path=path, **kw)
        self.conf, self.iou = float(conf_threshold), float(iou_threshold)
        if not (0.0 < self.conf < 1.0 and 0.0 < self.iou <= 1.0):
            raise SourceError(f"censor: conf_threshold must be in (0, 1) and iou_threshold in "
                              f"(0, 1], got {conf_threshold} and {iou_threshold}")
        self.nudenet = NudeNetSource(model_path=nudenet_path or None, memory=self.memory,
                                     device=self.device, batch_size=self.batch_size) \
            if nudenet else None
        self.size = 640
        self.names: tuple[str, ...] = ()

    def check_model(self, model: Any) -> None:
        model.require_input(None, (None, 3, None, None))
        meta = dict(model.session.get_modelmeta().custom_metadata_map)
        self.size = _imgsz(meta, model.input_shape)
        self.names = labels_for(self.model_path, meta)
        rows = model.session.get_outputs()[0].shape
        if len(rows) == 3 and isinstance(rows[1], int) and rows[1] != 4 + len(self.names):
            raise SourceError(f"{self.model_path.name} outputs {rows[1]} rows per anchor but "
                              f"its labels name {len(self.names)} classes: the label file "
                              "does not belong to this model")

    def abstain(self, why: str, **kw: Any) -> ScoreCard:
        """An abstention that says the image is unchecked (the filter never calls it
        publishable)."""
        return super().abstain(why, extras={"publish": unchecked(why)}, **kw)

    def unload(self) -> None:
        super().unload()
        if self.nudenet is not None:
            self.nudenet.unload()

    def describe(self) -> str:
        text = super().describe()
        return text + (" + NudeNet" if self.nudenet is not None else "")

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image, self.size)

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        out = np.asarray(outputs[0])
        if out.ndim != 3:
            raise SourceError(f"unexpected output0 shape {out.shape}; expected "
                              "(N, 4 + classes, anchors)")
        return [self.card(extras={"detections": detections(
            row, self.names, w, h, self.size, self.conf, self.iou), "size": [w, h]})
            for row, (w, h) in zip(out, metas, strict=True)]

    def _score(self, images: list[Image], ctx: ScoreContext) -> Result:
        opts = ctx.options
        try:
            rule = rule_for(opts.rule, divisor=opts.divisor, minimum=opts.minimum,
                            min_cover=opts.min_cover)
        except (ValueError, TypeError) as e:
            raise SourceError(f"censor: {e}") from e
        found = super()._score(images, ctx)
        extra: Sheet = [[] for _ in images]
        if self.nudenet is not None:
            quiet = replace(ctx, progress=lambda i: None, options={"label": "nudenet"})
            extra = self.nudenet.score(images, quiet)
        t0 = time.perf_counter()
        cards = []
        for img, (card,), more in zip(images, found, extra, strict=True):
            cards.append([self._judge(img, card, more, rule) if card.ok else card])
        found.timing["measure_s"] = time.perf_counter() - t0
        return Result(cards, timing=found.timing, provider=found.provider, reused=found.reused)

    def _judge(self, image: Image, card: ScoreCard, nudenet: list[ScoreCard], rule) -> ScoreCard:
        """The image's card with its regions measured and judged."""
        dets = list(card.extras["detections"])
        regions = [Region(tuple(d["box"]), d["class"], d["score"], "censor") for d in dets
                   if d["class"] in REQUIRED]
        for c in nudenet:
            if not c.ok:
                return self.abstain(f"NudeNet could not run: {c.abstained}")
            for d in c.extras.get("detections", []):
                if d["class"] in NUDENET_REQUIRED and d["score"] > self.conf:
                    x, y, w, h = d["box"]
                    regions.append(Region((x, y, x + w, y + h), d["class"], d["score"],
                                          "nudenet"))
                    dets.append({**d, "box": [x, y, x + w, y + h], "detector": "nudenet"})
        regions = merge(regions)
        img = uint8_image(image)
        height, width = img.shape[:2]
        verdict = judge(regions, [measure(img, r.box) for r in regions], width, height, rule)
        tags = {}
        for d in dets:
            tags[d["class"]] = max(tags.get(d["class"], 0.0), d["score"])
        return self.card(tags=tags, extras={"publish": verdict.to_dict(), "detections": dets})
