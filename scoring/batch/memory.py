"""The CLI's memory policy: use the GPU when there is one, make room on it first.

Inside ComfyUI the nodes' policy (`nodes/shared/comfy_memory.py`) frees VRAM through
`model_management` and reports what is free; each source then decides by itself whether
it fits, runs on the CPU, or offloads part of its layers (`onnx_session.load`,
`vlm_llamacpp.plan_gpu_layers`, the transformers loader). This policy gives the same
sources the same two answers from outside ComfyUI: before a model loads it waits for the
ComfyUI beside the CLI and asks it to free memory (`make_room`), then reports the free
VRAM that torch sees. So the decision is taken by the one implementation in the sources.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..host.memory import MemoryPolicy


def nvidia_driver() -> bool:
    """Whether an NVIDIA driver is installed (cheap: no torch import on a CPU-only host)."""
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        return True
    root = os.environ.get("SYSTEMROOT")
    return bool(root) and (Path(root) / "System32" / "nvcuda.dll").exists()


def cuda_device() -> str:
    """"cuda" when torch sees a CUDA device, else "cpu" (no driver or no torch: "cpu")."""
    if not nvidia_driver():
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    try:
        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # a broken driver: no GPU for us
        return "cpu"


def free_bytes(device: str) -> int | None:
    """Free memory on a CUDA `device` as the driver reports it; None when unknown."""
    if not device.startswith("cuda") or not nvidia_driver():
        return None
    try:
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    except Exception:
        return None


class CliMemory(MemoryPolicy):
    """Sources prefer `device` (default: CUDA when present); `make_room()` runs before
    every reservation on an accelerator (the Runner's wait-for-ComfyUI-and-free), and
    `free_again()` after an out-of-memory error (True when ComfyUI was asked to free)."""

    def __init__(self, make_room: Callable[[], None] = lambda: None,
                 free_again: Callable[[], bool] = lambda: False,
                 device: str | None = None) -> None:
        self.make_room, self.free_again = make_room, free_again
        self._device = device

    def device(self) -> str:
        if self._device is None:
            self._device = cuda_device()
        return self._device

    def reserve(self, nbytes: int, device: str) -> int | None:
        if device == "cpu":
            return None
        self.make_room()
        return free_bytes(device)

    def free(self, device: str) -> int | None:
        return free_bytes(device)

    def recover(self, model: object, device: str) -> bool:
        """After an out-of-memory error: ask the ComfyUI beside us to free again."""
        return device != "cpu" and self.free_again()
