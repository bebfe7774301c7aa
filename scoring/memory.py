"""The memory policy: how a scorer asks its host for room before loading, and gives it back.

Standalone (CLI, tests) the default policy does nothing and everything runs where the source
puts it. Inside ComfyUI, `nodes/comfy_memory.py` implements it over `comfy.model_management`
so loading a scorer first evicts the diffusion model and ComfyUI can later evict the scorer.
"""

from __future__ import annotations

from typing import Protocol


class Releasable(Protocol):
    """Anything a host may ask to let go of its memory (a loaded source)."""

    name: str

    def unload(self) -> None: ...


class MemoryPolicy:
    """Default policy: no accelerator bookkeeping; sources run on the CPU.

    Subclasses override all four methods together.
    """

    def device(self) -> str:
        """The device scorers should prefer: "cuda", "cuda:1", "mps" or "cpu"."""
        return "cpu"

    def reserve(self, nbytes: int, device: str) -> int | None:
        """Make room for `nbytes` on `device` (evicting others); return the free bytes
        there afterwards, or None when unknown (then the source decides on its own)."""
        return None

    def loaded(self, model: Releasable, nbytes: int, device: str) -> None:
        """`model` now holds `nbytes` on `device`; the host may call `model.unload()` to evict."""

    def released(self, model: Releasable) -> None:
        """`model` has let go of its memory (after `unload`)."""


DEFAULT = MemoryPolicy()
