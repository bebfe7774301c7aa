"""onnxruntime-gpu facts for `onnx_session`: CUDA provider options, whether its CUDA can load
beside torch's, and the CPU fallback remembered for the process once it could not.

The defaults suit a server that owns the card, not a pack sharing it with ComfyUI: the arena
grows by powers of two and never shrinks while the session lives, and cuDNN tries every
convolution algorithm with the largest workspace. Here the arena grows by what is asked, up
to the room the host reserved, and cuDNN picks by heuristic.
"""

from __future__ import annotations

import importlib
import logging
import sys

log = logging.getLogger("saiten")

_fallback: str | None = None
"""Why CUDA sessions cannot run in this process (then every session goes to the CPU)."""


def provider_options(device: str, limit: int | None) -> dict[str, str]:
    """Options for `CUDAExecutionProvider` on `device` ("cuda" / "cuda:N"), its arena kept
    under `limit` bytes when given."""
    options = {
        "device_id": device.partition(":")[2] or "0",
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "cudnn_conv_use_max_workspace": "0",
    }
    if limit:
        options["gpu_mem_limit"] = str(int(limit))
    return options


def ort_cuda_version() -> str:
    """The CUDA version this onnxruntime was built for ("12.8"; "" for a CPU build)."""
    try:
        info = importlib.import_module("onnxruntime.capi.build_and_package_info")
    except ImportError:
        return ""
    return str(getattr(info, "cuda_version", "") or "")


def mismatch() -> str | None:
    """Why onnxruntime-gpu's CUDA cannot sit beside torch's in this process, else None: they
    need the same CUDA major (`preload_dlls()` loads torch's libraries and never raises)."""
    torch = sys.modules.get("torch")
    theirs = str(getattr(getattr(torch, "version", None), "cuda", "") or "")
    ours = ort_cuda_version()
    if not ours or not theirs or ours.split(".")[0] == theirs.split(".")[0]:
        return None
    major = theirs.split(".")[0]
    return (f"onnxruntime-gpu is built for CUDA {ours} but torch uses CUDA {theirs}: ran on "
            f"CPU; install an onnxruntime-gpu built for CUDA {major} (see onnxruntime.ai's "
            "CUDA execution provider page)")


def fallback() -> str | None:
    """Why CUDA sessions go to the CPU for the rest of the process, else None."""
    global _fallback
    if _fallback is None:
        _fallback = mismatch()
        if _fallback:
            log.warning("saiten: %s", _fallback)
    return _fallback or None


def remember(reason: str) -> None:
    """CUDA could not run a session: every later one goes to the CPU without evicting."""
    global _fallback
    _fallback = reason
    log.warning("saiten: %s; later ONNX sessions run on the CPU", reason)


def forget() -> None:
    """Forget the remembered fallback (tests; a new onnxruntime in a long session)."""
    global _fallback
    _fallback = None
