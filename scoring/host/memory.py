"""The memory policy: how a scorer asks its host for room before loading, and gives it back.

Standalone (CLI, tests) the default policy evicts nothing and everything runs where the
source puts it. Inside ComfyUI, `nodes/shared/comfy_memory.py` implements it over
`comfy.model_management`: loading a scorer first evicts the diffusion model (keeping ComfyUI's
margins free), ComfyUI can later evict the scorer, and ComfyUI decides the precision.
"""

from __future__ import annotations

import sys
from typing import Protocol

_OOM_TEXT = ("out of memory", "failed to allocate memory", "cudaerrormemoryallocation",
             "cuda_error_out_of_memory", "cublas_status_alloc_failed")


class Releasable(Protocol):
    """Anything a host may ask to let go of its memory (a loaded source)."""

    name: str

    def unload(self) -> None: ...


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` is an accelerator out-of-memory error: torch's `OutOfMemoryError`,
    onnxruntime's "Failed to allocate memory" / "CUDA failure 2", llama.cpp's allocation
    failures."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(t in text for t in _OOM_TEXT)


def cuda_dtype(device: str) -> str:
    """Precision for a torch model on `device` without a host to ask: bf16 where the card
    computes it natively (compute capability 8+; `torch.cuda.is_bf16_supported()` also counts
    emulation), fp16 on older CUDA cards and other accelerators, fp32 on the CPU."""
    if device.startswith("cpu"):
        return "fp32"
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None:
        return "bf16" if torch.cuda.get_device_properties(device).major >= 8 else "fp16"
    return "fp16"


class MemoryPolicy:
    """Default policy: no accelerator bookkeeping; sources run on the CPU.

    Subclasses override these together.
    """

    def device(self) -> str:
        """The device scorers should prefer: "cuda", "cuda:1", "mps" or "cpu"."""
        return "cpu"

    def reserve(self, nbytes: int, device: str) -> int | None:
        """Make room for `nbytes` on `device` (evicting others, keeping the host's margins
        free); return the bytes a scorer may then use there (free memory less the margins),
        or None when unknown (then the source decides on its own)."""
        return None

    def free(self, device: str) -> int | None:
        """Bytes a non-torch runtime (onnxruntime, llama.cpp) can allocate on `device` now,
        or None when unknown; sources measure what they really took with it."""
        return None

    def recover(self, model: Releasable | None, device: str) -> bool:
        """After an out-of-memory error on `device`: evict everything else the host can
        (never `model`); True when that made room worth one retry."""
        return False

    def dtype(self, device: str) -> str:
        """"bf16", "fp16" or "fp32": the precision for a torch model on `device`."""
        return cuda_dtype(device)

    def loaded(self, model: Releasable, nbytes: int, device: str) -> None:
        """`model` now holds `nbytes` on `device`; the host may call `model.unload()` to evict."""

    def released(self, model: Releasable) -> None:
        """`model` has let go of its memory (after `unload`)."""


DEFAULT = MemoryPolicy()
