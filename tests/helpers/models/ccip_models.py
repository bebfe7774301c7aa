"""A tiny CCIP feature model with the real I/O contract of deepghs/ccip_onnx.

Layout: `<model>/model_feat.onnx` (input `input` [N,3,384,384] float32 RGB/255 normalised with
CLIP's mean and std, output `output` [N,768] features) and `<model>/metrics.json`
(`f1_score`, `precision`, `recall`, `threshold` — the difference at or under which two images
show the same character, difference = (1 − cos)/2). Reference: imgutils/metrics/ccip.py.

The stand-in's features are a fixed linear map of the image's mean colour (normalised), so
two images whose colours agree are "the same character" and a red one and a blue one are not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from .onnx_models import mean_linear

DIM = 768
THRESHOLD = 0.17847511429108218
"""ccip-caformer-24-randaug-pruned's published threshold (its metrics.json)."""


def build_ccip(folder: Path, *, threshold: float = THRESHOLD, size: int = 384,
               dim: int = DIM, metrics: dict | None = None, seed: int = 0) -> Path:
    """A ccip_onnx model folder; `metrics` replaces metrics.json (a broken file)."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(seed).normal(size=(3, dim)).astype(np.float32)
    model = mean_linear(w, np.zeros(dim, np.float32), input_name="input", output_name="output",
                        shape=["batch", 3, size, size], mean_axes=(2, 3), sigmoid=False)
    onnx.save_model(model, folder / "model_feat.onnx")
    data = metrics if metrics is not None else {
        "f1_score": 0.9172, "precision": 0.9335, "recall": 0.9015, "threshold": threshold}
    (folder / "metrics.json").write_text(json.dumps(data), encoding="utf-8")
    return folder / "model_feat.onnx"
