"""Tiny YOLOv8 detectors with the real I/O contract, whose detections follow drawn shapes.

Contract (ultralytics' ONNX export, as deepghs/anime_censor_detection and NudeNet's 320n.onnx
ship it): input `images` [N,3,S,S] float32 RGB/255, output `output0` [N, 4 + classes,
anchors] — per anchor (cx, cy, w, h) in input pixels, then one sigmoid score per class — and
metadata `names` ("{0: 'nipple_f', …}"), `imgsz` ("[S, S]"), `stride`, `task`, `batch`.
The censor folder also holds `model_artifacts.json` ({"names": [...], …}).

What it detects: marker patches (`helpers.censor_images.mark`) — anchor k is the bounding
box of every pixel whose two `high` channels both exceed twice its `low` channel by 0.15, with
score 0.9 × min(1, pixels / 20) for its class; the other anchors (zero) pad the output to the
8400 anchors of a 640 model (S²/64 + S²/256 + S²/1024).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from helpers.censor_images import MARKERS
from onnx import TensorProto, helper, numpy_helper

CENSOR_NAMES = ("nipple_f", "penis", "pussy")
"""deepghs/anime_censor_detection v1.0's classes in output order."""


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def yolo(markers: Sequence[tuple[str, int]], names: Sequence[str], *, size: int = 640,
         batch: int | str = "batch") -> onnx.ModelProto:
    """A detector: one anchor per (marker label, class index) pair."""
    k, nc = len(markers), len(names)
    anchors = max(k, size * size // 64 + size * size // 256 + size * size // 1024)
    n, inits = [], [
        _const("two", 2.0), _const("bias", 0.15), _const("one", 1.0), _const("big", 1e5),
        _const("half", 0.5), _const("per_px", 1.0 / 20), _const("zero", 0.0),
        _const("top", 0.9),
        _const("xs", np.arange(size).reshape(1, 1, 1, size)),
        _const("ys", np.arange(size).reshape(1, 1, size, 1)),
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "split3"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "ax23"),
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, anchors - k], np.int64), "pads"),
    ]
    onehot = np.zeros((1, nc, k), np.float32)
    for j, (_, cls) in enumerate(markers):
        onehot[0, cls, j] = 1.0
    inits.append(_const("onehot", onehot))
    n.append(helper.make_node("Split", ["images", "split3"], ["c0", "c1", "c2"], axis=1))
    masks = []
    for j, (label, _) in enumerate(markers):
        hi1, hi2, lo = MARKERS[label]
        n += [helper.make_node("Min", [f"c{hi1}", f"c{hi2}"], [f"mn{j}"]),
              helper.make_node("Mul", [f"c{lo}", "two"], [f"lo{j}"]),
              helper.make_node("Sub", [f"mn{j}", f"lo{j}"], [f"d{j}"]),
              helper.make_node("Sub", [f"d{j}", "bias"], [f"e{j}"]),
              helper.make_node("Relu", [f"e{j}"], [f"r{j}"]),
              helper.make_node("Sign", [f"r{j}"], [f"m{j}"])]
        masks.append(f"m{j}")
    n += [helper.make_node("Concat", masks, ["M"], axis=1),
          helper.make_node("Sub", ["one", "M"], ["inv"]),
          helper.make_node("Mul", ["inv", "big"], ["away"]),
          helper.make_node("ReduceSum", ["M", "ax23"], ["count"], keepdims=0)]
    for axis, grid in (("x", "xs"), ("y", "ys")):
        n += [helper.make_node("Mul", ["M", grid], [f"{axis}m"]),
              helper.make_node("Add", [f"{axis}m", "away"], [f"{axis}lo_in"]),
              helper.make_node("ReduceMin", [f"{axis}lo_in"], [f"{axis}0"], axes=[2, 3],
                               keepdims=0),
              helper.make_node("Add", [grid, "one"], [f"{axis}g1"]),
              helper.make_node("Mul", ["M", f"{axis}g1"], [f"{axis}m1"]),
              helper.make_node("Sub", [f"{axis}m1", "away"], [f"{axis}hi_in"]),
              helper.make_node("ReduceMax", [f"{axis}hi_in"], [f"{axis}1"], axes=[2, 3],
                               keepdims=0),
              helper.make_node("Add", [f"{axis}0", f"{axis}1"], [f"{axis}sum"]),
              helper.make_node("Mul", [f"{axis}sum", "half"], [f"c{axis}"]),
              helper.make_node("Sub", [f"{axis}1", f"{axis}0"], [f"w{axis}"])]
    n += [helper.make_node("Mul", ["count", "per_px"], ["frac"]),
          helper.make_node("Clip", ["frac", "zero", "one"], ["sure"]),
          helper.make_node("Mul", ["sure", "top"], ["score"])]
    rows = []
    for r in ("cx", "cy", "wx", "wy"):
        n.append(helper.make_node("Unsqueeze", [r, "ax1"], [f"u{r}"]))
        rows.append(f"u{r}")
    n += [helper.make_node("Unsqueeze", ["score", "ax1"], ["uscore"]),
          helper.make_node("Mul", ["uscore", "onehot"], ["cls"]),
          helper.make_node("Concat", [*rows, "cls"], ["raw"], axis=1),
          helper.make_node("Pad", ["raw", "pads"], ["output0"])]
    graph = helper.make_graph(
        n, "yolo_standin",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT,
                                       [batch, 4 + nc, anchors])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    meta = {"names": repr(dict(enumerate(names))), "imgsz": f"[{size}, {size}]",
            "stride": "32", "task": "detect", "batch": str(batch if isinstance(batch, int) else 1),
            "author": "Saiten tests (stand-in)"}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def build_censor(folder: Path, *, size: int = 640, batch: int | str = 1,
                 names: Sequence[str] = CENSOR_NAMES, artifacts: Mapping | None = None,
                 markers: Sequence[tuple[str, int]] | None = None) -> Path:
    """A deepghs/anime_censor_detection model folder (`censor_detect_v1.0_s/`): model.onnx and
    model_artifacts.json. `artifacts` replaces the JSON (a mismatched or broken file)."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = markers if markers is not None else [
        (label, list(names).index(label)) for label in MARKERS if label in names]
    onnx.save_model(yolo(pairs, names, size=size, batch=batch), folder / "model.onnx")
    data = artifacts if artifacts is not None else {
        "names": list(names), "nc": len(names), "args": {"imgsz": size, "batch": 16},
        "model_type": "yolov8s"}
    (folder / "model_artifacts.json").write_text(json.dumps(data), encoding="utf-8")
    return folder / "model.onnx"


def build_nudenet(path: Path, *, size: int = 320) -> Path:
    """A stand-in for NudeNet's 320n.onnx (18 classes, dynamic batch): the "pussy" marker is
    FEMALE_GENITALIA_EXPOSED, "penis" MALE_GENITALIA_EXPOSED, "nipple_f"
    FEMALE_BREAST_EXPOSED."""
    from scoring.sources.onnx.nudenet import LABELS

    pairs = [("pussy", LABELS.index("FEMALE_GENITALIA_EXPOSED")),
             ("penis", LABELS.index("MALE_GENITALIA_EXPOSED")),
             ("nipple_f", LABELS.index("FEMALE_BREAST_EXPOSED"))]
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(yolo(pairs, LABELS, size=size, batch="batch"), path)
    return path
