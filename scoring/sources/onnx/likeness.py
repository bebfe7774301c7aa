"""`likeness`: is this the user's character? CCIP (deepghs/ccip_onnx) against reference images.

Files per model folder: `model_feat.onnx` (input `input` [N,3,384,384]: the image resized to
the square, bilinear, RGB/255 normalised with CLIP's mean and std; output `output` [N,D]
features) and `metrics.json` (its `threshold`: two images show the same character when their
difference is at or under it). Difference = (1 − cos)/2 of the features (reference:
deepghs/imgutils `metrics/ccip.py`). Several references merge as the median difference.

Scores a `likeness` axis, 100 · (1 − difference / (2 · threshold)) clamped to 0–100 (50 at the
threshold), and says `same_character` in the card; the references' features are cached by
content (a folder by its files' names, sizes and times).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ...core.cards import LIKENESS, ScoreCard
from ...core.errors import SourceError
from ...core.images import BadImage, Image, list_images, load
from ..base import Result, ScoreContext, log
from ..spec import Model, RunOptions, Spec
from .base import OnnxSource, uint8_image
from .censor import read_json

REPO = "deepghs/ccip_onnx"
FILES = ("model_feat.onnx", "metrics.json")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
MAX_REFERENCES = 64
CACHE = 512
"""Reference features kept per loaded model."""


@dataclass(frozen=True)
class LikenessOptions(RunOptions):
    """`references`: the character's reference images — a folder (path text) or images."""

    references: Any = ()


def _model(name: str) -> Model:
    return Model(name, "likeness", repo=REPO, files=FILES, subfolder=name, folder=name,
                 size=150_000_000, vram="≈0.2 GB", licence="openrail")


SPEC = Spec(
    "likeness", "detector", (LIKENESS,), 1.0, options=LikenessOptions,
    build={"threshold": 0.0, "batch_size": 8, "device": "auto"},
    models=(_model("ccip-caformer-24-randaug-pruned"),
            _model("ccip-caformer-6-randaug-pruned_fp32"), _model("ccip-caformer-5_fp32")),
    facts={"default_model": "ccip-caformer-24-randaug-pruned", "max_references": MAX_REFERENCES},
)
"""threshold 0 = the model's own, from its metrics.json."""


def prepare(image: Image, size: int) -> np.ndarray:
    """RGB 0–1 HxWx3 → 3×size×size float32, CLIP-normalised (bilinear resize, as imgutils)."""
    img = uint8_image(image)
    small = np.asarray(PILImage.fromarray(img).resize((size, size),
                                                       PILImage.Resampling.BILINEAR))
    return ((small.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def differences(features: np.ndarray, references: np.ndarray) -> np.ndarray:
    """(1 − cos)/2 between every row of `features` and of `references`, in [0, 1]."""
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip((1.0 - unit(features) @ unit(references).T) / 2.0, 0.0, 1.0)


def likeness(difference: float, threshold: float) -> float:
    """100 at difference 0, 50 at the threshold, 0 at twice it."""
    return round(min(100.0, max(0.0, 100.0 * (1.0 - difference / (2.0 * threshold)))), 2)


def _digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest()


class LikenessSource(OnnxSource):
    """CCIP likeness to the user's reference images (see the module)."""

    spec = SPEC

    def __init__(self, *, model_path: str | Path, threshold: float = 0.0, **kw: Any) -> None:
        path = Path(model_path)
        path = path / "model_feat.onnx" if path.is_dir() else path
        super().__init__(model_path=path, **kw)
        self.given_threshold = float(threshold)
        if not 0.0 <= self.given_threshold < 1.0:
            raise SourceError(f"likeness: threshold must be in [0, 1), got {threshold}")
        self.threshold = self.given_threshold or 0.0
        self.size = 384
        self._features: OrderedDict[str, np.ndarray] = OrderedDict()
        self._folders: dict[str, tuple[tuple, list[str]]] = {}

    def check_model(self, model: Any) -> None:
        model.require_input(None, (None, 3, None, None))
        h = model.input_shape[2]
        self.size = h if isinstance(h, int) and h > 0 else 384
        if self.given_threshold:
            self.threshold = self.given_threshold
            return
        metrics = self.model_path.parent / "metrics.json"
        if not metrics.is_file():
            raise SourceError(f"{metrics} not found: download both files of the model "
                              f"({', '.join(FILES)}) or give a threshold")
        data = read_json(metrics, "a CCIP metrics.json")
        t = data.get("threshold") if isinstance(data, dict) else None
        if not isinstance(t, int | float) or not 0.0 < float(t) < 1.0:
            raise SourceError(f"{metrics}: \"threshold\" must be a number in (0, 1), got {t!r}")
        self.threshold = float(t)

    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        return prepare(image, self.size), None

    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        feats = np.asarray(outputs[0], np.float32)
        if feats.ndim != 2 or len(feats) != len(metas):
            raise SourceError(f"unexpected CCIP output shape {feats.shape}; expected (N, D)")
        return [self.card(extras={"feature": f}) for f in feats]

    # -- references ---------------------------------------------------------------------
    def _images(self, references: Any) -> list[tuple[str, Image]]:
        """(key, image) per reference: a folder's files, or the images given."""
        if isinstance(references, str | Path):
            folder = Path(references).expanduser()
            if not folder.is_dir():
                raise SourceError(f"likeness: reference folder not found: {folder}")
            files = list_images(folder)[:MAX_REFERENCES]
            out = []
            for f in files:
                try:
                    out.append((str(f), load(f)))
                except BadImage as e:
                    log.warning("saiten: likeness skips reference %s: %s", f.name, e)
            return out
        return [("", np.asarray(img, np.float32)) for img in list(references)[:MAX_REFERENCES]]

    def reference_features(self, references: Any, ctx: ScoreContext) -> np.ndarray:
        """The references' features (K×D), computed once per content and kept."""
        signature = None
        if isinstance(references, str | Path):
            folder = Path(references).expanduser()
            files = list_images(folder)[:MAX_REFERENCES] if folder.is_dir() else []
            signature = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
            known = self._folders.get(str(folder))
            if known and known[0] == signature and all(k in self._features for k in known[1]):
                return np.stack([self._features[k] for k in known[1]])
        pairs = self._images(references)
        if not pairs:
            raise SourceError("likeness: no reference images — connect the character's "
                              "images to `references` (the CLI: --option "
                              "likeness.references=FOLDER)")
        keys = [_digest(uint8_image(img)) for _, img in pairs]
        todo = [i for i, k in enumerate(keys) if k not in self._features]
        assert self.model is not None
        for chunk in self.model.chunks(len(todo), self.batch_size):
            ctx.check()
            rows = np.stack([prepare(pairs[todo[j]][1], self.size) for j in chunk])
            feats = self.model.run(rows)[0]
            for j, f in zip(chunk, feats, strict=True):
                self._features[keys[todo[j]]] = np.asarray(f, np.float32)
        for k in keys:
            self._features.move_to_end(k)
        while len(self._features) > CACHE:
            self._features.popitem(last=False)
        if signature is not None:
            self._folders[str(Path(references).expanduser())] = (signature, keys)
        return np.stack([self._features[k] for k in keys])

    def _score(self, images: list[Image], ctx: ScoreContext) -> Result:
        t0 = time.perf_counter()
        refs = self.reference_features(ctx.options.references, ctx)
        t_refs = time.perf_counter() - t0
        found = super()._score(images, ctx)
        cards = []
        for (card,) in found:
            cards.append([self._card(card.extras["feature"], refs) if card.ok else card])
        timing = {**found.timing, "references_s": t_refs, "references": float(len(refs))}
        return Result(cards, timing=timing, provider=found.provider, reused=found.reused)

    def _card(self, feature: np.ndarray, refs: np.ndarray) -> ScoreCard:
        per = differences(feature[None], refs)[0]
        if not np.isfinite(per).all():
            return self.abstain("CCIP features are not finite (a broken model output)")
        diff = float(np.median(per))
        t = self.threshold
        return self.card(axes={LIKENESS: likeness(diff, t)}, extras={
            "difference": round(diff, 4), "threshold": round(t, 4),
            "same_character": bool(diff <= t), "references": len(per),
            "differences": [round(float(d), 4) for d in per]})

