"""WD v3 taggers (SmilingWolf wd-eva02-large / vit / swinv2 / convnext -tagger-v3).

`model.onnx` takes NHWC float32 [N,S,S,3], BGR, 0–255, the image padded to a square on
white then resized to S (448, read from the session); it outputs sigmoid probabilities [N,T]
(never re-squashed here). `selected_tags.csv` (tag_id,name,category,count) names the T
outputs: category 9 = rating (general, sensitive, questionable, explicit), 0 = general,
4 = character. Erotic = 100·explicit + 60·questionable + 30·sensitive, clamped to 0–100.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ...core.cards import ScoreCard
from ...core.errors import SourceError
from ...core.images import Image
from ..spec import Model, Spec
from .base import OnnxSource, uint8_image

RATING, GENERAL, CHARACTER = 9, 0, 4
EROTIC_WEIGHTS = {"explicit": 100.0, "questionable": 60.0, "sensitive": 30.0}


LABELS = "selected_tags.csv"
"""The label file beside a WD v3 model.onnx (tag_id,name,category,count)."""


def erotic_from_rating(rating: dict[str, float]) -> float:
    """100·explicit + 60·questionable + 30·sensitive, clamped to 0–100 (SPEC)."""
    value = sum(w * float(rating.get(k, 0.0)) for k, w in EROTIC_WEIGHTS.items())
    return round(min(100.0, max(0.0, value)), 2) if math.isfinite(value) else 0.0


def mcut_threshold(probs: np.ndarray) -> float:
    """Maximum Cut Thresholding (Largeron et al. 2012): the midpoint of the largest gap
    between consecutive sorted probabilities."""
    p = np.sort(np.asarray(probs, np.float64))[::-1]
    if p.size < 2:
        return 0.5
    gaps = p[:-1] - p[1:]
    t = int(gaps.argmax())
    return float((p[t] + p[t + 1]) / 2)


@dataclass(frozen=True)
class Labels:
    """The tag names of a WD model and which outputs are ratings, general and characters."""

    names: tuple[str, ...]
    rating: np.ndarray
    general: np.ndarray
    character: np.ndarray


@functools.lru_cache(maxsize=16)
def _read_labels(path: str, _mtime: float) -> Labels:
    names, cats = [], []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                names.append(row["name"])
                cats.append(int(row["category"]))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise SourceError(f"{Path(path).name}: not a WD label file (tag_id,name,category,count): "
                          f"{type(e).__name__}: {e}") from e
    c = np.array(cats, np.int64)
    return Labels(tuple(names), np.flatnonzero(c == RATING), np.flatnonzero(c == GENERAL),
                  np.flatnonzero(c == CHARACTER))


def read_labels(path: Path) -> Labels:
    """`selected_tags.csv`, parsed once per file version."""
    if not path.is_file():
        raise SourceError(f"label file not found: {path} ({LABELS} of the model)")
    return _read_labels(str(path.resolve()), path.stat().st_mtime)


def label_file(model: Path) -> Path:
    """The CSV beside a model: <name>.csv for a flat <name>.onnx, else `LABELS`."""
    flat = model.with_suffix(".csv")
    return flat if model.name != "model.onnx" and flat.is_file() else model.parent / LABELS


def prepare(image: Image, size: int) -> np.ndarray:
    """RGB 0–1 HxWx3 → size×size×3 float32 BGR 0–255: fitted into a white square
    (centred), bicubic."""
    img = uint8_image(image)
    h, w = img.shape[:2]
    side = max(h, w)
    nw, nh = max(1, round(w * size / side)), max(1, round(h * size / side))
    pil = PILImage.fromarray(img)
    if (nw, nh) != (w, h):
        pil = pil.resize((nw, nh), PILImage.Resampling.BICUBIC)
    canvas = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = np.asarray(pil)
    return canvas[:, :, ::-1].astype(np.float32)


def _known(name: str, size: int, vram: str, note: str) -> Model:
    return Model(name, "wd", repo=f"SmilingWolf/{name}", files=("model.onnx", LABELS),
                 folder=name, size=size, vram=vram, licence="apache-2.0", note=note)


SPEC = Spec(
    "wd", "tagger", ("erotic",), 0.8,
    build={"general_threshold": 0.35, "character_threshold": 0.85, "mcut": False,
           "batch_size": 8, "device": "auto"},
    facts={"labels": LABELS},
    models=(
        _known("wd-eva02-large-tagger-v3", 1_260_000_000, "≈1.9 GB", "best tags (F1 0.477)"),
        _known("wd-vit-large-tagger-v3", 1_260_000_000, "≈1.9 GB", "large ViT"),
        _known("wd-vit-tagger-v3", 379_000_000, "≈0.6 GB", "light"),
        _known("wd-swinv2-tagger-v3", 467_000_000, "≈0.7 GB", "light"),
        _known("wd-convnext-tagger-v3", 395_000_000, "≈0.6 GB", "light")),
)
"""WD v3: its recommended thresholds and the downloadable models (by folder name)."""


class WDTagger(OnnxSource):
    """A WD v3 tagger: rating → `erotic`, general and character tags with confidences."""

    spec = SPEC

    def __init__(self, *, model_path: str | Path,
                 general_threshold: float = SPEC.build["general_threshold"],
                 character_threshold: float = SPEC.build["character_threshold"],
                 mcut: bool = False,
                 labels_path: str | Path | None = None, **kw: Any) -> None:
        path = Path(model_path)
        path = path / "model.onnx" if path.is_dir() else path
        super().__init__(model_path=path, **kw)
        self.labels_path = Path(labels_path) if labels_path else label_file(path)
        self.general_threshold = float(general_threshold)
        self.character_threshold = float(character_threshold)
        self.mcut = bool(mcut)
        self.size = 448
        self.labels: Labels | None = None

    def check_model(self, model: Any) -> None:
        model.require_input(None, (None, None, None, 3))
        h, w = model.input_shape[1:3]
        self.size = h if isinstance(h, int) else (w if isinstance(w, int) else 448)
        self.labels = read_labels(self.labels_path)
        width = model.session.get_outputs()[0].shape[-1]
        if isinstance(width, int):
            self.check_width(width)

    def check_width(self, width: int) -> None:
        n = len(self.labels.names) if self.labels else 0
        if width != n:
            raise SourceError(
                f"{self.labels_path.name} has {n} tags but {self.model_path.name} outputs "
                f"{width}: the label file does not belong to this model")

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image, self.size), None

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        probs = np.asarray(outputs[0], np.float32)
        self.check_width(probs.shape[-1])
        return [self.card_for(row) for row in probs]

    def card_for(self, probs: np.ndarray) -> ScoreCard:
        """One image's probabilities → its card."""
        lab = self.labels
        assert lab is not None
        rating = {lab.names[i]: round(float(probs[i]), 4) for i in lab.rating}
        gen_t, chr_t = self.general_threshold, self.character_threshold
        if self.mcut:
            gen_t = mcut_threshold(probs[lab.general]) if lab.general.size else gen_t
            chr_t = max(0.15, mcut_threshold(probs[lab.character])) if lab.character.size \
                else chr_t
        general = {lab.names[i]: round(float(probs[i]), 4)
                   for i in lab.general if probs[i] >= gen_t}
        characters = {lab.names[i]: round(float(probs[i]), 4)
                      for i in lab.character if probs[i] >= chr_t}
        tags = dict(sorted({**characters, **general}.items(), key=lambda kv: -kv[1]))
        value = erotic_from_rating(rating)
        return self.card(axes={"erotic": value}, tags=tags, extras={
            "rating": rating, "characters": characters,
            "thresholds": {"general": round(gen_t, 4), "character": round(chr_t, 4)}})
