"""deepghs/anime_aesthetic: a 7-class aesthetic classifier (ONNX) → `appeal` and `overall`.

Layout (one folder per model in the repository, e.g. `swinv2pv3_v0_448_ls0.2_x/`):
`model.onnx`, `meta.json` (`labels`: masterpiece, best, great, good, normal, low, worst) and
`samples.npz` (`arr_0`: a 2×K array, row 0 expected class scores sorted ascending, row 1 the
percentile of each among the training samples, 0–1).

As deepghs/imgutils does it (`generic/classify.py`, `metrics/dbaesthetic.py`): the image is
resized (bilinear) to the input's H×W, RGB/255, (x − 0.5)/0.5, NCHW into `input`; `output`
holds the class probabilities, read by label name; the score is the expected class index over
worst … masterpiece (0–6), mapped to its percentile by linear interpolation between the
samples. The cards carry the percentile × 100 on both axes (the same 0–100 scale as the other
sources before median/MAD), the imgutils label for it, and a confidence from the spread of the
class distribution (1 − std/3; 3 is the widest spread over seven classes).
"""

from __future__ import annotations

import functools
import json
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

LABELS = ("worst", "low", "normal", "good", "great", "best", "masterpiece")
"""The classes in score order (imgutils' `_LABELS`): the expected index runs 0–6."""

LABEL_AT = {"masterpiece": 0.95, "best": 0.85, "great": 0.75, "good": 0.5, "normal": 0.25,
            "low": 0.1, "worst": 0.0}
"""imgutils' default percentile thresholds of each label."""

MAX_STD = 3.0
FILES = ("model.onnx", "meta.json", "samples.npz")
REPO = "deepghs/anime_aesthetic"
DEFAULT_MODEL = "swinv2pv3_v0_448_ls0.2_x"
MAX_SAMPLES = 1_000_000


def _known(name: str, size: int, vram: str, note: str) -> Model:
    return Model(name, "aesthetic", repo=REPO, subfolder=name, files=FILES, folder=name,
                 size=size, vram=vram, licence="openrail", note=note)


SPEC = Spec(
    "aesthetic", "aesthetic", ("appeal", "overall"), 1.0,
    build={"batch_size": 8, "device": "auto"},
    models=(_known(DEFAULT_MODEL, 418_000_000, "≈0.7 GB", "the default: AUC 0.8214, 448 px"),
            _known("caformer_s36_v0_ls0.2", 150_000_000, "≈0.3 GB",
                   "lighter (22 GFLOPs): AUC 0.7725, 384 px")),
    facts={"default_model": DEFAULT_MODEL, "labels": LABELS, "percentiles": LABEL_AT,
           "licence": "openrail", "score": "percentile among the training samples, 0–100"},
)
"""deepghs/anime_aesthetic: the default swinv2pv3 model (AUC 0.8214) and the lighter caformer
(AUC 0.7725), one folder each in the repository."""


@dataclass(frozen=True)
class Calibration:
    """The samples' score → percentile map."""

    x: np.ndarray
    y: np.ndarray

    def percentile(self, score: float) -> float:
        """imgutils' `score_to_percentile`: clip to the samples' range, then linear between the
        neighbouring samples (a flat step keeps the lower sample's percentile)."""
        x, y = self.x, self.y
        s = float(np.clip(score, x[0], x[-1]))
        i = int(np.searchsorted(x, s))
        if i >= x.shape[0] - 1:
            return float(y[-1] if i >= x.shape[0] else y[i])
        x0, x1, y0, y1 = x[i], x[i + 1], y[i], y[i + 1]
        if np.isclose(x1, x0):
            return float(y[i])
        return float(np.clip((s - x0) / (x1 - x0) * (y1 - y0) + y0, y.min(), y.max()))


@functools.lru_cache(maxsize=8)
def _read_samples(path: str, _mtime: float) -> Calibration:
    try:
        with np.load(path, allow_pickle=False) as data:
            stacked = np.asarray(data["arr_0"], np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise SourceError(f"{Path(path).name}: not a samples.npz (arr_0): "
                          f"{type(e).__name__}: {e}") from e
    if stacked.ndim != 2 or stacked.shape[0] != 2 or not 2 <= stacked.shape[1] <= MAX_SAMPLES:
        raise SourceError(f"{Path(path).name}: arr_0 must be 2×K (scores, percentiles), got "
                          f"{stacked.shape}")
    x, y = stacked
    if not (np.isfinite(stacked).all() and np.all(np.diff(x) >= 0)
            and y.min() >= 0.0 and y.max() <= 1.0):
        raise SourceError(f"{Path(path).name}: scores must be finite and sorted, percentiles "
                          "within 0–1")
    return Calibration(x, y)


def read_samples(path: Path) -> Calibration:
    """`samples.npz`, read once per file version."""
    if not path.is_file():
        raise SourceError(f"{path.name} missing next to the model ({path.parent}): it maps the "
                          f"model's score to a percentile; download it from {REPO}")
    return _read_samples(str(path.resolve()), path.stat().st_mtime)


def read_labels(path: Path) -> tuple[str, ...]:
    """`meta.json`'s labels, which must be the seven aesthetic classes (in any order)."""
    if not path.is_file():
        raise SourceError(f"{path.name} missing next to the model ({path.parent})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8")[:1_000_000])
        labels = tuple(str(x) for x in raw["labels"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SourceError(f"{path.name}: no labels list ({type(e).__name__}: {e})") from e
    if sorted(labels) != sorted(LABELS):
        raise SourceError(f"{path.name}: labels {list(labels)} are not the aesthetic classes "
                          f"{list(LABELS)}: is this an anime_aesthetic model?")
    return labels


def prepare(image: Image, height: int, width: int) -> np.ndarray:
    """RGB 0–1 HxWx3 → 3×H×W float32: bilinear resize, RGB/255, (x − 0.5)/0.5."""
    pil = PILImage.fromarray(uint8_image(image))
    if pil.size != (width, height):
        pil = pil.resize((width, height), PILImage.Resampling.BILINEAR)
    x = np.asarray(pil, np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)


def label_for(percentile: float) -> str:
    """imgutils' `percentile_to_label` with its default thresholds."""
    for name, at in sorted(LABEL_AT.items(), key=lambda kv: (-kv[1], kv[0])):
        if percentile >= at:
            return name
    return "worst"


class AnimeAesthetic(OnnxSource):
    """An anime_aesthetic model folder (model.onnx, meta.json, samples.npz) as a scorer."""

    spec = SPEC

    def __init__(self, *, model_path: str | Path, **kw: Any) -> None:
        path = Path(model_path)
        path = path / "model.onnx" if path.is_dir() else path
        super().__init__(model_path=path, **kw)
        self.size = (448, 448)
        self.order: np.ndarray | None = None  # output column of each of LABELS
        self.calibration: Calibration | None = None
        self.output = 0

    def check_model(self, model: Any) -> None:
        model.require_input("input", (None, 3, None, None))
        h, w = model.input_shape[2:4]
        self.size = (h if isinstance(h, int) else 384, w if isinstance(w, int) else 384)
        names = model.output_names
        self.output = names.index("output") if "output" in names else 0
        labels = read_labels(self.model_path.parent / "meta.json")
        width = model.session.get_outputs()[self.output].shape[-1]
        if isinstance(width, int) and width != len(labels):
            raise SourceError(f"meta.json has {len(labels)} labels but the model outputs {width}")
        self.order = np.array([labels.index(name) for name in LABELS])
        self.calibration = read_samples(self.model_path.parent / "samples.npz")

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image, *self.size), None

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        probs = np.asarray(outputs[self.output], np.float64)
        if probs.ndim != 2 or probs.shape[1] != len(LABELS):
            raise SourceError(f"output shape {probs.shape}: expected N×{len(LABELS)}")
        return [self.card_for(row) for row in probs]

    def card_for(self, row: np.ndarray) -> ScoreCard:
        """One image's class probabilities (model order) → its card; an output that is not a
        probability distribution abstains (never a score it did not earn)."""
        assert self.order is not None and self.calibration is not None
        p = row[self.order]
        if not (np.isfinite(p).all() and p.min() >= -1e-6 and abs(p.sum() - 1.0) <= 0.02):
            return self.abstain(f"the model's output is not a probability distribution "
                                f"(sum {p.sum():.3g}): wrong model file?")
        p = np.clip(p, 0.0, None) / p.sum()
        index = np.arange(len(LABELS), dtype=np.float64)
        score = float(p @ index)
        std = float(np.sqrt(p @ (index - score) ** 2))
        pct = self.calibration.percentile(score)
        value = round(100.0 * pct, 2)
        return self.card(
            axes={"appeal": value, "overall": value},
            confidence=round(max(0.0, 1.0 - std / MAX_STD), 4),
            comment=f"{label_for(pct)} (percentile {value:.0f})",
            extras={"label": label_for(pct), "score": round(score, 4),
                    "percentile": round(pct, 4),
                    "probabilities": {name: round(float(v), 4) for name, v in zip(
                        LABELS, p, strict=True)}})
