"""Scoring's memory policy over ComfyUI's `comfy.model_management`.

Before a scorer loads, `reserve` asks ComfyUI to evict what it holds (the diffusion model
first). After it loads, `loaded` registers a `SessionPatcher` — a `ModelPatcher` standing in
for the scorer's session (onnxruntime, llama.cpp, a torch model) — among ComfyUI's loaded
models, so ComfyUI's own eviction (`free_memory`, `unload_all_models`, the "Free memory"
button / POST /free) unloads our scorer the way it unloads a checkpoint.
"""

from __future__ import annotations

import logging

import comfy.model_management as mm
import torch
from comfy.model_patcher import ModelPatcher

from ..scoring.memory import MemoryPolicy, Releasable

log = logging.getLogger("saiten")


def torch_device(device: str | torch.device) -> torch.device:
    """`device` as ComfyUI spells it ("cuda" → ComfyUI's own "cuda:N"), so its
    per-device bookkeeping (`LoadedModel.device == device`) matches."""
    dev = torch.device(device)
    main = mm.get_torch_device()
    if dev.index is None and dev.type == main.type:
        return main
    return dev


class _Session(torch.nn.Module):
    """The weightless module a SessionPatcher wraps (ModelPatcher needs a module; ComfyUI
    keeps a weak reference to it)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def extra_repr(self) -> str:
        return self.name


class SessionPatcher(ModelPatcher):
    """A ModelPatcher standing in for a loaded scorer of `nbytes` on `device`.

    ComfyUI evicts a model with `detach(unpatch_all=True)`: that unloads the scorer.
    `load_models_gpu` on an already-loaded model calls `detach(unpatch_all=False)` (and
    `__del__` does too): that keeps the session. A session is never partly offloaded.
    """

    def __init__(self, source: Releasable, nbytes: int, device: str | torch.device) -> None:
        dev = torch_device(device)
        name = getattr(source, "label", None) or getattr(source, "name", type(source).__name__)
        super().__init__(
            _Session(name),
            load_device=dev, offload_device=torch.device("cpu"), size=max(1, int(nbytes)),
        )
        self.source = source
        self.evicting = False
        self.model.device = dev
        self.model.model_loaded_weight_memory = self.size

    def loaded_size(self) -> int:
        return self.model.model_loaded_weight_memory

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        return 0  # the session already sits where its source put it

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        return 0  # all or nothing: ComfyUI then detaches the whole session

    def detach(self, unpatch_all: bool = True):
        super().detach(unpatch_all=False)
        if unpatch_all and not self.evicting:
            self.evicting = True
            log.info("saiten: ComfyUI evicts %s", self.model.name)
            try:
                self.source.unload()
            except Exception:
                log.exception("saiten: unloading %s failed", self.model.name)
            self.model.model_loaded_weight_memory = 0
        return self.model

    def clone(self):
        raise NotImplementedError("a scorer session is not cloned")


class ComfyMemory(MemoryPolicy):
    """Ask ComfyUI to evict what it holds before a scorer loads, and let ComfyUI evict the
    scorer later. One SessionPatcher per loaded source, held here (ComfyUI only keeps weak
    references)."""

    def __init__(self) -> None:
        self.patchers: dict[int, SessionPatcher] = {}
        # Evicted patchers live on until ComfyUI has dropped its entry: the death of their
        # module fires ComfyUI's finalizer, which would remove the entry mid-eviction.
        self._evicted: list[SessionPatcher] = []

    def device(self) -> str:
        return str(mm.get_torch_device())

    def reserve(self, nbytes: int, device: str) -> int | None:
        self._evicted.clear()
        dev = torch_device(device)
        mm.free_memory(nbytes, dev)
        mm.soft_empty_cache()
        return int(mm.get_free_memory(dev))

    def loaded(self, model: Releasable, nbytes: int, device: str) -> None:
        """Register `model` with ComfyUI (again: it moves to the front, most recently used)."""
        self._evicted.clear()
        patcher = self.patchers.pop(id(model), None)
        if patcher is not None and (patcher.source is not model  # a dead model's reused id
                                    or patcher.evicting or patcher.size != max(1, int(nbytes))
                                    or patcher.load_device != torch_device(device)):
            self._deregister(patcher)
            patcher = None
        patcher = patcher or SessionPatcher(model, nbytes, device)
        self.patchers[id(model)] = patcher
        mm.load_models_gpu([patcher])

    def released(self, model: Releasable) -> None:
        patcher = self.patchers.get(id(model))
        if patcher is not None and patcher.source is model:  # else a dead model's reused id
            del self.patchers[id(model)]
            if patcher.evicting:  # ComfyUI drops its own entry: keep out
                self._evicted.append(patcher)
            else:  # the source let go by itself: tell ComfyUI
                self._deregister(patcher)
        mm.soft_empty_cache()

    @staticmethod
    def _deregister(patcher: SessionPatcher) -> None:
        patcher.evicting = True  # so nothing below calls back into the source
        for i, lm in enumerate(mm.current_loaded_models):
            if lm.model is patcher:
                mm.current_loaded_models.pop(i)
                if lm.model_finalizer is not None:
                    lm.model_finalizer.detach()
                    lm.model_finalizer = None
                lm.real_model = None
                break


POLICY = ComfyMemory()
