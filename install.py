"""Saiten's install step: ComfyUI-Manager runs it after `requirements.txt`; the README's manual
install runs it too (`python install.py` with ComfyUI's Python). Never run at import or run time.

It adds only what the offline default needs and is missing, and never replaces or upgrades
what is there:

- an ONNX Runtime, only when none of onnxruntime / onnxruntime-gpu / onnxruntime-directml /
  onnxruntime-openvino is installed: `onnxruntime-gpu` when torch has CUDA, sees a GPU and its
  CUDA major is one an onnxruntime-gpu build on PyPI targets, else `onnxruntime`;
- the NudeNet detector (`320n.onnx`), with `pip install --no-deps nudenet` — nudenet's own
  dependencies (onnxruntime, opencv-python-headless) would replace a GPU build of either.

It prints what it did and why, and running it twice does nothing the second time.
`SAITEN_ONNXRUNTIME=onnxruntime-gpu|onnxruntime|none` overrides the runtime choice.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

RUNTIMES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
"""The ONNX Runtime builds; they share the `onnxruntime` module, so one must be installed."""

GPU_BUILDS = {11: "onnxruntime-gpu>=1.15,<1.19", 12: "onnxruntime-gpu>=1.19,<1.27",
              13: "onnxruntime-gpu>=1.27"}
"""CUDA major → the onnxruntime-gpu releases on PyPI built for it (read from each wheel's
nvidia-cuda-runtime requirement: 1.19–1.26 CUDA 12, 1.27+ CUDA 13)."""

CPU_BUILD = "onnxruntime>=1.17"
NUDENET = "nudenet>=3.4.2"
TAG = "[ComfyUI-Saiten install]"


def say(msg: str) -> None:
    print(f"{TAG} {msg}", flush=True)


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_runtimes() -> dict[str, str]:
    """{distribution: version} for every ONNX Runtime build installed."""
    return {d: v for d in RUNTIMES if (v := version(d))}


def torch_cuda() -> tuple[str | None, bool]:
    """(torch's CUDA version or None, whether it sees a GPU); (None, False) without torch."""
    if importlib.util.find_spec("torch") is None:
        return None, False
    try:
        import torch

        return torch.version.cuda, bool(torch.version.cuda) and torch.cuda.is_available()
    except Exception as e:  # a broken torch is ComfyUI's problem, not a reason to fail here
        say(f"torch did not import ({type(e).__name__}: {e}); assuming no CUDA")
        return None, False


def choose_runtime(cuda: str | None, has_gpu: bool) -> tuple[str, str]:
    """(pip requirement, why) for a Python with no ONNX Runtime yet."""
    if not cuda:
        return CPU_BUILD, "torch has no CUDA (or is not installed)"
    major = int(cuda.split(".")[0])
    if not has_gpu:
        return CPU_BUILD, f"torch is built for CUDA {cuda} but sees no GPU"
    if major not in GPU_BUILDS:
        return CPU_BUILD, f"no onnxruntime-gpu on PyPI is built for torch's CUDA {cuda}"
    return GPU_BUILDS[major], f"torch uses CUDA {cuda} on a GPU"


def pip_install(*args: str) -> bool:
    """`pip install ARGS` into this Python (uv's pip where the venv has no pip)."""
    if importlib.util.find_spec("pip") is not None:
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    elif shutil.which("uv"):
        cmd = ["uv", "pip", "install", "--python", sys.executable, *args]
    else:
        say("neither pip nor uv is available for this Python: install by hand: "
            f"{sys.executable} -m pip install {' '.join(args)}")
        return False
    say("running: " + " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode == 0


def nudenet_model() -> Path | None:
    """`320n.onnx` inside an installed nudenet package (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "320n.onnx").is_file():
            return Path(folder) / "320n.onnx"
    return None


def ensure_runtime() -> bool:
    found = installed_runtimes()
    if len(found) > 1:
        names = ", ".join(f"{d} {v}" for d, v in found.items())
        gpu = next((d for d in found if d != "onnxruntime"), "onnxruntime-gpu")
        say("WARNING: several ONNX Runtime builds are installed (" + names + "). They share "
            "one `onnxruntime` module, so the last one installed wins and GPU providers can "
            f"vanish for every pack. Fix: pip uninstall -y {' '.join(found)} && "
            f"pip install {gpu}. Left as is.")
        return True
    if found:
        dist, ver = next(iter(found.items()))
        say(f"ONNX Runtime: {dist} {ver} is installed; left as is")
        return True
    override = os.environ.get("SAITEN_ONNXRUNTIME", "").strip()
    if override == "none":
        say("ONNX Runtime: none installed and SAITEN_ONNXRUNTIME=none: skipped")
        return True
    if override:
        requirement, why = override, "SAITEN_ONNXRUNTIME asks for it"
    else:
        requirement, why = choose_runtime(*torch_cuda())
    say(f"ONNX Runtime: none installed; installing {requirement} ({why})")
    if pip_install(requirement):
        return True
    if requirement != CPU_BUILD:
        say(f"{requirement} did not install; falling back to {CPU_BUILD} (CPU only)")
        return pip_install(CPU_BUILD)
    return False


def ensure_nudenet() -> bool:
    model = nudenet_model()
    if model is not None:
        say(f"NudeNet model: {model} is present; left as is")
        return True
    say(f"NudeNet model: missing; installing {NUDENET} with --no-deps (only its 320n.onnx is "
        "used; its dependencies onnxruntime and opencv-python-headless are never installed)")
    if not pip_install("--no-deps", NUDENET):
        return False
    importlib.invalidate_caches()
    return nudenet_model() is not None


def main() -> int:
    say(f"Python {sys.version.split()[0]} at {sys.executable}")
    ok = ensure_runtime()
    ok = ensure_nudenet() and ok
    say("done" if ok else "FAILED: see the messages above; the Tagger node will say what is "
        "missing")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
