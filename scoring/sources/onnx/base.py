"""What the three ONNX sources (NudeNet, WD, CL) share: a cached session, chunked batched
inference, per-image preparation that may abstain, timing and the provider in use."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ...core.cards import ScoreCard
from ...core.errors import Cancelled
from ...core.images import BadImage, Image, finite
from ..base import Result, ScoreContext, Source
from . import session as onnx_session

log = logging.getLogger("saiten")

def uint8_image(image: Image) -> np.ndarray:
    """HxWx3 uint8 for a model's preprocessing (`finite`: BadImage for a broken decode)."""
    out = np.multiply(finite(image), 255.0)
    out += 0.5
    return out.astype(np.uint8)


class OnnxSource(Source):
    """A source running one ONNX model over the batch in chunks.

    Subclasses implement `prepare` (one image → one model input row, raising for a bad
    image), `decode` (the model's output rows for a chunk → cards) and may override
    `check_model` to validate the model's I/O contract once it is loaded.
    """

    def __init__(self, *, model_path: str | Path, device: str = "auto", batch_size: int = 8,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.model_path = Path(model_path)
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.model: onnx_session.OnnxModel | None = None

    # -- life cycle -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.model is not None and not self.model.closed

    def memory_bytes(self) -> int:
        try:
            return int(onnx_session.weight_bytes(self.model_path) * onnx_session.MEMORY_FACTOR)
        except OSError:
            return 0

    def load(self) -> None:
        if self.loaded:
            return
        model = onnx_session.open_model(self.model_path, device=self.device, memory=self.memory)
        try:
            self.check_model(model)
        except Exception:
            onnx_session.close(model)
            raise
        self.model = model

    def unload(self) -> None:
        if self.model is not None:
            onnx_session.close(self.model)
            self.model = None

    @property
    def provider(self) -> str:
        """The provider actually in use ("" before loading)."""
        return self.model.provider if self.loaded else ""

    def describe(self) -> str:
        if not self.loaded:
            return f"{self.label} ({self.model_path.name}, not loaded)"
        return f"{self.label}: {self.model.describe()}"

    def check_model(self, model: onnx_session.OnnxModel) -> None:
        """Raise SourceError when `model` does not have this format's I/O contract."""

    # -- scoring ----------------------------------------------------------------------
    @abstractmethod
    def prepare(self, image: Image) -> tuple[np.ndarray, Any]:
        """One image → (its model input row, whatever `decode` needs about it)."""

    @abstractmethod
    def decode(self, outputs: list[np.ndarray], metas: list[Any]) -> list[ScoreCard]:
        """The model's outputs for a chunk (row j ↔ metas[j]) → one card per image."""

    def _score(self, images: list[Image], ctx: ScoreContext) -> Result:
        assert self.model is not None
        sheet: list[list[ScoreCard] | None] = [None] * len(images)
        t_prep = t_run = 0.0
        for chunk in self.model.chunks(len(images), self.batch_size):
            ctx.check()
            t0 = time.perf_counter()
            rows, metas, where = [], [], []
            for i in chunk:
                try:
                    row, meta = self.prepare(images[i])
                except Cancelled:
                    raise
                except Exception as e:
                    reason = str(e) if isinstance(e, BadImage) else f"{type(e).__name__}: {e}"
                    log.warning("saiten: %s abstains on image %d: %s", self.label, i, reason)
                    sheet[i] = [self.abstain(f"bad image: {reason}")]
                    continue
                rows.append(row)
                metas.append(meta)
                where.append(i)
            t1 = time.perf_counter()
            t_prep += t1 - t0
            if rows:
                try:
                    outputs = self.model.run(np.stack(rows))
                    cards = self.decode(outputs, metas)
                except Cancelled:
                    raise
                except Exception as e:
                    log.warning("saiten: %s failed on images %s: %s", self.label, where, e)
                    cards = [self.abstain(f"{type(e).__name__}: {e}") for _ in where]
                for i, card in zip(where, cards, strict=True):
                    sheet[i] = [card]
            t_run += time.perf_counter() - t1
            for i in chunk:
                ctx.progress(i)
        timing = {"images": float(len(images)), "preprocess_s": t_prep, "inference_s": t_run}
        return Result([cards or [self.abstain("not scored")] for cards in sheet], timing=timing,
                      provider=self.model.provider, reused=self.model.reused)
