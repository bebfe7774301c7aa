"""Scoring's memory policy over ComfyUI's `comfy.model_management`."""

from __future__ import annotations

import comfy.model_management as mm
import torch

from ..scoring.memory import MemoryPolicy, Releasable


class ComfyMemory(MemoryPolicy):
    """Ask ComfyUI to evict what it holds before a scorer loads (the diffusion model first)."""

    def device(self) -> str:
        return str(mm.get_torch_device())

    def reserve(self, nbytes: int, device: str) -> int | None:
        dev = torch.device(device)
        mm.free_memory(nbytes, dev)
        mm.soft_empty_cache()
        return int(mm.get_free_memory(dev))

    def loaded(self, model: Releasable, nbytes: int, device: str) -> None:
        pass

    def released(self, model: Releasable) -> None:
        mm.soft_empty_cache()


POLICY = ComfyMemory()
