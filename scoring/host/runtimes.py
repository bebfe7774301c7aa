"""Facts about the ONNX Runtime builds, shared by install.py and the diagnostics.

Standard library only: install.py loads this file by path before anything else of the pack
can be imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

RUNTIMES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
"""The ONNX Runtime builds; they share the `onnxruntime` module, so exactly one belongs in a
Python."""

GPU_BUILDS = {11: "onnxruntime-gpu>=1.15,<1.19", 12: "onnxruntime-gpu>=1.19,<1.27",
              13: "onnxruntime-gpu>=1.27"}
"""CUDA major → the onnxruntime-gpu releases on PyPI built for it (read from each wheel's
nvidia-cuda-runtime requirement: 1.19–1.26 CUDA 12, 1.27+ CUDA 13)."""

CPU_BUILD = "onnxruntime>=1.17"
NUDENET = "nudenet>=3.4.2"


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_runtimes() -> dict[str, str]:
    """{distribution: version} for every ONNX Runtime build installed."""
    return {d: v for d in RUNTIMES if (v := version(d))}


def gpu_build_cuda(ort_gpu_version: str) -> int | None:
    """The CUDA major an onnxruntime-gpu release from PyPI is built for."""
    try:
        minor = int(ort_gpu_version.split(".")[1])
    except (IndexError, ValueError):
        return None
    return 13 if minor >= 27 else 12 if minor >= 19 else 11


def choose_runtime(cuda: str | None, has_gpu: bool) -> tuple[str, str]:
    """(pip requirement, why) for a Python with no ONNX Runtime yet, from torch's CUDA."""
    if not cuda:
        return CPU_BUILD, "torch has no CUDA (or is not installed)"
    if not has_gpu:
        return CPU_BUILD, f"torch is built for CUDA {cuda} but sees no GPU"
    major = int(cuda.split(".")[0])
    if major not in GPU_BUILDS:
        return CPU_BUILD, f"no onnxruntime-gpu on PyPI is built for torch's CUDA {cuda}"
    return GPU_BUILDS[major], f"torch uses CUDA {cuda} on a GPU"


def several_runtimes_fix(found: dict[str, str]) -> str:
    """What to run when more than one ONNX Runtime build is installed."""
    keep = next((d for d in found if d != "onnxruntime"), "onnxruntime-gpu")
    return f"pip uninstall -y {' '.join(found)} && pip install {keep}"


def nudenet_model() -> Path | None:
    """`320n.onnx` inside an installed nudenet package (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "320n.onnx").is_file():
            return Path(folder) / "320n.onnx"
    return None
