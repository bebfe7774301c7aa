"""CL Tagger v2 (cella110n/cl_tagger_v2, SigLIP2 so400m/14 @ 384).

Files: `model.onnx` + `model.onnx.data` (external weights), `model_vocabulary.json`
(idx_to_tag, tag_to_category, categories) and `model_tag_metrics.npz` (per-tag `best_thr`,
`calibration_table`). Input `pixel_values` NCHW [N,3,384,384]: the image on a white square,
resized (bicubic), RGB/255, (x − 0.5)/0.5; output `logits` [N,T] → sigmoid here.
The license forbids redistribution: the files come only from the official (gated) repo.

Scores: the Rating category → `erotic` (same formula as WD); the Quality category →
`overall` as the expected value of the quality levels under their normalised probabilities
(`QUALITY_VALUES`: best 90, high 75, normal 60, medium 50, bad 35, low 30, worst 10).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.cards import ScoreCard
from ...core.errors import SourceError
from ...core.images import Image
from ..spec import Model, Spec
from .base import OnnxSource
from .wd import erotic_from_rating
from .wd import prepare as wd_prepare

QUALITY_VALUES = {"best": 90.0, "high": 75.0, "normal": 60.0, "medium": 50.0, "bad": 35.0,
                  "low": 30.0, "worst": 10.0}
"""The `overall` value of each quality tag ("best quality", "worst_quality", …)."""

RATINGS = ("general", "sensitive", "questionable", "explicit")
PINNED = ("rating", "quality")
"""Categories reported whole, never thresholded into tags."""


VOCABULARY = "model_vocabulary.json"
"""The label file beside a CL Tagger v2 model.onnx."""
METRICS = "model_tag_metrics.npz"
"""Per-tag best thresholds beside it (`best_thr`)."""


def _norm(text: str) -> str:
    return text.strip().lower().replace("_", " ")


def quality_score(quality: dict[str, float]) -> float | None:
    """Σ p_i·v_i / Σ p_i over the known quality tags; None when they carry no mass."""
    pairs = [(p, QUALITY_VALUES[_norm(t).split()[0]]) for t, p in quality.items()
             if _norm(t).split() and _norm(t).split()[0] in QUALITY_VALUES]
    mass = sum(p for p, _ in pairs)
    if mass <= 1e-6:
        return None
    return round(sum(p * v for p, v in pairs) / mass, 2)


@dataclass(frozen=True)
class Vocabulary:
    """Tag names and the normalised category of every output."""

    names: tuple[str, ...]
    categories: tuple[str, ...]

    def where(self, category: str) -> np.ndarray:
        return np.flatnonzero(np.array(self.categories) == category)


def _category_names(raw: Any) -> dict[str, str]:
    """`categories` as {id-as-text: name}, whatever its JSON shape."""
    names: dict[str, str] = {}
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, str):
                names[str(i)] = item
            elif isinstance(item, dict) and "name" in item:
                names[str(item.get("category_id", item.get("id", i)))] = str(item["name"])
    elif isinstance(raw, dict):
        for k, v in raw.items():
            if isinstance(v, str):
                names[str(k)] = v
            elif isinstance(v, int):
                names[str(v)] = str(k)
    return names


@functools.lru_cache(maxsize=8)
def _read_vocabulary(path: str, _mtime: float) -> Vocabulary:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        raw = data["idx_to_tag"]
        if isinstance(raw, dict):
            pairs = sorted((int(k), str(v)) for k, v in raw.items())
            if [i for i, _ in pairs] != list(range(len(pairs))):
                raise ValueError("idx_to_tag indices are not 0..T-1")
            names = tuple(v for _, v in pairs)
        else:
            names = tuple(str(v) for v in raw)
        cat_names = _category_names(data.get("categories"))
        to_cat = data.get("tag_to_category", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SourceError(f"{Path(path).name}: not a CL vocabulary (idx_to_tag, "
                          f"tag_to_category): {type(e).__name__}: {e}") from e
    cats = []
    for name in names:
        c = to_cat.get(name, "")
        c = cat_names.get(str(c), str(c))
        cats.append(c.strip().lower())
    return Vocabulary(names, tuple(cats))


def read_vocabulary(path: Path) -> Vocabulary:
    """`model_vocabulary.json`, parsed once per file version."""
    if not path.is_file():
        raise SourceError(f"label file not found: {path} ({VOCABULARY} of the model)")
    return _read_vocabulary(str(path.resolve()), path.stat().st_mtime)


def read_best_thresholds(path: Path) -> np.ndarray:
    """Per-tag `best_thr` from `model_tag_metrics.npz`."""
    if not path.is_file():
        raise SourceError(f"per-tag thresholds need {path.name} next to the model ({path})")
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["best_thr"], np.float32).reshape(-1)
    except (OSError, KeyError, ValueError) as e:
        raise SourceError(f"{path.name}: no usable best_thr ({type(e).__name__}: {e})") from e


def prepare(image: Image, size: int = 384) -> np.ndarray:
    """RGB 0–1 HxWx3 → 3×size×size float32: white square, bicubic, (x/255 − 0.5)/0.5."""
    bgr = wd_prepare(image, size)
    return (bgr[:, :, ::-1] * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)


THRESHOLD_MODES = ("single", "per-tag")

SPEC = Spec(
    "cl", "tagger", ("erotic", "overall"), 0.8,
    build={"threshold": 0.55, "character_threshold": 0.55, "threshold_mode": "single",
           "batch_size": 8, "device": "auto"},
    choices={"threshold_mode": THRESHOLD_MODES},
    models=(Model("cl_tagger_v2", "cl", repo="cella110n/cl_tagger_v2", subfolder="v2_00",
                  files=("model.onnx", "model.onnx.data", VOCABULARY, METRICS),
                  folder="cl_tagger_v2", vram="≈2 GB", licence="no redistribution (gated)",
                  note="quality tags → overall; accept its terms on the Hub first"),),
    facts={"labels": VOCABULARY},
)
"""CL Tagger v2: its recommended thresholds, modes and the official (gated) repository."""


class CLTagger(OnnxSource):
    """CL Tagger v2: Rating → `erotic`, Quality → `overall`, tags by single or per-tag
    thresholds."""

    spec = SPEC

    def __init__(self, *, model_path: str | Path, threshold: float = SPEC.build["threshold"],
                 character_threshold: float | None = SPEC.build["character_threshold"],
                 threshold_mode: str = SPEC.build["threshold_mode"], **kw: Any) -> None:
        path = Path(model_path)
        path = path / "model.onnx" if path.is_dir() else path
        super().__init__(model_path=path, **kw)
        if threshold_mode not in THRESHOLD_MODES:
            raise SourceError(
                f"threshold_mode must be 'single' or 'per-tag', not {threshold_mode!r}")
        self.threshold = float(threshold)
        self.character_threshold = float(character_threshold if character_threshold is not None
                                         else threshold)
        self.threshold_mode = threshold_mode
        self.vocab_path = path.parent / VOCABULARY
        self.metrics_path = path.parent / METRICS
        self.size = 384
        self.vocab: Vocabulary | None = None
        self.thresholds: np.ndarray | None = None

    def check_model(self, model: Any) -> None:
        model.require_input("pixel_values", (None, 3, None, None))
        h = model.input_shape[2]
        self.size = h if isinstance(h, int) else 384
        self.vocab = vocab = read_vocabulary(self.vocab_path)
        width = model.session.get_outputs()[0].shape[-1]
        if isinstance(width, int):
            self.check_width(width)
        n = len(vocab.names)
        chars = np.isin(np.array(vocab.categories), ("character", "copyright", "artist"))
        fixed = np.where(chars, self.character_threshold, self.threshold).astype(np.float32)
        if self.threshold_mode == "per-tag":
            best = read_best_thresholds(self.metrics_path)
            if best.size != n:
                raise SourceError(f"{self.metrics_path.name} has {best.size} thresholds but "
                                  f"{self.vocab_path.name} has {n} tags")
            fixed = np.where(np.isfinite(best), best, fixed)
        self.thresholds = fixed

    def check_width(self, width: int) -> None:
        n = len(self.vocab.names) if self.vocab else 0
        if width != n:
            raise SourceError(
                f"{self.vocab_path.name} has {n} tags but {self.model_path.name} outputs "
                f"{width}: the vocabulary does not belong to this model")

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image, self.size), None

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        logits = np.asarray(outputs[0], np.float32)
        self.check_width(logits.shape[-1])
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        return [self.card_for(row) for row in probs]

    def card_for(self, probs: np.ndarray) -> ScoreCard:
        """One image's probabilities → its card."""
        v, thr = self.vocab, self.thresholds
        assert v is not None and thr is not None
        cats = np.array(v.categories)
        rating = {_norm(v.names[i]): round(float(probs[i]), 4) for i in v.where("rating")
                  if _norm(v.names[i]) in RATINGS}
        quality = {v.names[i]: round(float(probs[i]), 4) for i in v.where("quality")}
        keep = np.flatnonzero((probs >= thr) & ~np.isin(cats, PINNED))
        keep = keep[np.argsort(-probs[keep], kind="stable")]
        tags = {v.names[i]: round(float(probs[i]), 4) for i in keep}
        characters = {v.names[i]: tags[v.names[i]] for i in keep if cats[i] == "character"}
        axes = {"erotic": erotic_from_rating(rating)} if rating else {}
        overall = quality_score(quality)
        if overall is not None:
            axes["overall"] = overall
        return self.card(axes=axes, tags=tags, extras={
            "rating": rating, "quality": quality, "characters": characters,
            "threshold_mode": self.threshold_mode})
