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

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _facts():
    """scoring/host/runtimes.py, loaded by path (the rest of the pack may not import yet)."""
    path = Path(__file__).resolve().parent / "scoring" / "host" / "runtimes.py"
    spec = importlib.util.spec_from_file_location("saiten_runtimes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _facts()
TAG = "[ComfyUI-Saiten install]"


def say(msg: str) -> None:
    print(f"{TAG} {msg}", flush=True)


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


def pip_install(*args: str) -> bool:
    """`pip install ARGS` into this Python (uv's pip where the venv has no pip)."""
    if importlib.util.find_spec("pip") is not None:
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    elif importlib.util.find_spec("uv") is not None:  # ComfyUI-Manager's uv mode
        cmd = [sys.executable, "-m", "uv", "pip", "install", "--python", sys.executable, *args]
    elif shutil.which("uv"):
        cmd = ["uv", "pip", "install", "--python", sys.executable, *args]
    else:
        say("neither pip nor uv is available for this Python: install by hand: "
            f"{sys.executable} -m pip install {' '.join(args)}")
        return False
    say("running: " + " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode == 0


def ensure_runtime() -> bool:
    found = R.installed_runtimes()
    if len(found) > 1:
        names = ", ".join(f"{d} {v}" for d, v in found.items())
        say("WARNING: several ONNX Runtime builds are installed (" + names + "). They share "
            "one `onnxruntime` module, so the last one installed wins and GPU providers can "
            f"vanish for every pack. Fix: {R.several_runtimes_fix(found)}. Left as is.")
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
        requirement, why = R.choose_runtime(*torch_cuda())
    say(f"ONNX Runtime: none installed; installing {requirement} ({why})")
    if pip_install(requirement):
        return True
    if requirement != R.CPU_BUILD:
        say(f"{requirement} did not install; falling back to {R.CPU_BUILD} (CPU only)")
        return pip_install(R.CPU_BUILD)
    return False


def ensure_nudenet() -> bool:
    model = R.nudenet_model()
    if model is not None:
        say(f"NudeNet model: {model} is present; left as is")
        return True
    say(f"NudeNet model: missing; installing {R.NUDENET} with --no-deps (only its 320n.onnx is "
        "used; its dependencies onnxruntime and opencv-python-headless are never installed)")
    if not pip_install("--no-deps", R.NUDENET):
        return False
    importlib.invalidate_caches()
    return R.nudenet_model() is not None


def main() -> int:
    say(f"Python {sys.version.split()[0]} at {sys.executable}")
    ok = ensure_runtime()
    ok = ensure_nudenet() and ok
    say("done" if ok else "FAILED: see the messages above; the Tagger node will say what is "
        "missing")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
