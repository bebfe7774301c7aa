"""Tiny ONNX models with the real I/O contracts of the taggers, built with `onnx.helper`.

Each model's output depends on the image: the per-channel mean of its input goes through a
3×T matrix (and a bias), so a test can choose which tags fire for which colour.
- WD v3: `input` NHWC [N,S,S,3] float32 BGR 0–255 → `output` sigmoid probs [N,T];
  `selected_tags.csv` (tag_id,name,category,count).
- CL v2: `pixel_values` NCHW [N,3,384,384] (RGB/255, (x−0.5)/0.5) → `logits` [N,T];
  weights in `model.onnx.data`; `model_vocabulary.json`, `model_tag_metrics.npz`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RATINGS = ("general", "sensitive", "questionable", "explicit")
QUALITY = ("best quality", "normal quality", "bad quality", "worst quality")

ALLOC_FAILED = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
    "MatMul node. Name:'/head/MatMul' Status Message: /onnxruntime_src/onnxruntime/core/"
    "framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
    "onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for "
    "requested buffer of size 402653184")
"""onnxruntime-gpu's error when its CUDA arena cannot allocate (the card is full)."""


def _model(nodes: list, inp, out, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "tiny", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def mean_linear(weights: np.ndarray, bias: np.ndarray, *, input_name: str, output_name: str,
                shape: Sequence[int | str], mean_axes: Sequence[int], sigmoid: bool,
                scale: float = 1.0) -> onnx.ModelProto:
    """out = [sigmoid](mean(input over `mean_axes`) · scale @ weights + bias)."""
    weights = np.asarray(weights, np.float32)
    t = weights.shape[1]
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["m"], axes=list(mean_axes), keepdims=0),
        helper.make_node("Mul", ["m", "scale"], ["ms"]),
        helper.make_node("MatMul", ["ms", "W"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["y" if sigmoid else output_name]),
    ]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["y"], [output_name]))
    inits = [numpy_helper.from_array(weights, "W"),
             numpy_helper.from_array(np.asarray(bias, np.float32).reshape(t), "b"),
             numpy_helper.from_array(np.array(scale, np.float32), "scale")]
    batch = shape[0]
    return _model(nodes, helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(shape)),
                  helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, t]), inits)


def wd_tags(general: Sequence[str] = ("red", "green", "blue", "white_background"),
            characters: Sequence[str] = ("hatsune_miku",)) -> list[tuple[str, int]]:
    """(name, category) rows in WD order: ratings (9), general (0), characters (4)."""
    return ([(r, 9) for r in RATINGS] + [(g, 0) for g in general]
            + [(c, 4) for c in characters])


def build_wd(folder: Path, tags: Sequence[tuple[str, int]], weights: np.ndarray,
             bias: np.ndarray, *, size: int = 448, batch: int | str = "batch",
             csv_rows: int | None = None) -> Path:
    """A WD v3 model folder: model.onnx (input BGR means/255 → probs) + selected_tags.csv.

    `weights` is 3×T over the (B, G, R) means in 0–1. `csv_rows` writes a label file with
    a different number of rows (a mismatched pair)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = mean_linear(weights, bias, input_name="input", output_name="output",
                        shape=[batch, size, size, 3], mean_axes=(1, 2), sigmoid=True,
                        scale=1.0 / 255.0)
    onnx.save_model(model, folder / "model.onnx")
    rows = list(tags)[: csv_rows] if csv_rows is not None else list(tags)
    if csv_rows is not None and csv_rows > len(rows):
        rows += [(f"extra_{i}", 0) for i in range(csv_rows - len(rows))]
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["tag_id", "name", "category", "count"])
        for i, (name, cat) in enumerate(rows):
            w.writerow([1000 + i, name, cat, 100 - i])
    return folder


def cl_tags(general: Sequence[str] = ("red", "green", "blue"),
            characters: Sequence[str] = ("hatsune miku",)) -> list[tuple[str, str]]:
    """(tag, category) in CL order: general, character, rating, quality."""
    return ([(g, "General") for g in general] + [(c, "Character") for c in characters]
            + [(r, "Rating") for r in RATINGS] + [(q, "Quality") for q in QUALITY])


def build_cl(folder: Path, tags: Sequence[tuple[str, str]], weights: np.ndarray,
             bias: np.ndarray, *, best_thr: np.ndarray | None = None, size: int = 384,
             batch: int | str = "batch", external: bool = True) -> Path:
    """A CL v2 model folder: model.onnx + model.onnx.data (normalised RGB means → logits),
    model_vocabulary.json and model_tag_metrics.npz. `weights` is 3×T over (R, G, B)
    means in −1…1."""
    folder.mkdir(parents=True, exist_ok=True)
    model = mean_linear(weights, bias, input_name="pixel_values", output_name="logits",
                        shape=[batch, 3, size, size], mean_axes=(2, 3), sigmoid=False)
    onnx.save_model(model, folder / "model.onnx", save_as_external_data=external,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    categories = sorted({c for _, c in tags})
    vocab = {
        "idx_to_tag": {str(i): t for i, (t, _) in enumerate(tags)},
        "tag_to_idx": {t: i for i, (t, _) in enumerate(tags)},
        "tag_to_category": {t: c for t, c in tags},
        "categories": categories,
    }
    (folder / "model_vocabulary.json").write_text(json.dumps(vocab), encoding="utf-8")
    n = len(tags)
    thr = np.full(n, 0.5, np.float32) if best_thr is None else np.asarray(best_thr, np.float32)
    np.savez(folder / "model_tag_metrics.npz", best_thr=thr,
             calibration_table=np.tile(np.linspace(0, 1, 100, dtype=np.float32), (n, 1)))
    return folder


def save_truncated(src: Path, dst: Path) -> Path:
    """A copy of `src` cut in half (an interrupted download)."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 2])
    return dst
