"""Scoring's memory policy over ComfyUI's `comfy.model_management`.

Before a scorer loads on the GPU, `reserve` asks ComfyUI to evict what it holds — its own
models first (the diffusion model, VAE, text encoders), other scorers only when that is not
enough — until the scorer's bytes plus ComfyUI's margin (`minimum_inference_memory()`:
0.8 GiB + `extra_reserved_memory()`, which `--reserve-vram` sets) are free outside torch's
cache (onnxruntime and llama.cpp cannot use torch's cached blocks). `--lowvram`: scorers only
use VRAM that is already free, evicting nothing; `--novram`: scorers stay on the CPU.

After a scorer loads, `loaded` puts a `SessionPatcher` — a weightless `ModelPatcher` standing
in for its session (onnxruntime, llama.cpp, a torch model) — among ComfyUI's loaded models
on ComfyUI's device, so ComfyUI's own eviction (`free_memory`; `unload_all_models`: the
"Free memory" button, POST /free, its out-of-memory handler) unloads the scorer the way it
unloads a checkpoint. A scorer in RAM while ComfyUI manages a GPU holds no VRAM: ComfyUI
making room never evicts it; unloading everything does.
"""

from __future__ import annotations

import logging
import math

import comfy.model_management as mm
import torch
from comfy.model_patcher import ModelPatcher

from ...scoring.host.memory import MemoryPolicy, Releasable

log = logging.getLogger("saiten")
CPU = torch.device("cpu")


def torch_device(device: str | torch.device) -> torch.device:
    """`device` as ComfyUI spells it ("cuda" → ComfyUI's own "cuda:N"), so its
    per-device bookkeeping (`LoadedModel.device == device`) matches."""
    dev = torch.device(device)
    main = mm.get_torch_device()
    if dev.index is None and dev.type == main.type:
        return main
    return dev


def vram_mode() -> str:
    """ComfyUI's VRAM setting as scorers follow it: "normal" (and --highvram), "low"
    (--lowvram: use free VRAM, evict nothing) or "none" (--novram, --cpu: stay on the CPU)."""
    state = mm.vram_state
    if state in (mm.VRAMState.NO_VRAM, mm.VRAMState.DISABLED):
        return "none"
    return "low" if state == mm.VRAMState.LOW_VRAM else "normal"


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

    It is registered on ComfyUI's device; `vram` is what it holds there (0 for a scorer in
    RAM while ComfyUI manages a GPU). ComfyUI evicts a model with `detach(unpatch_all=True)`:
    that unloads the scorer. `load_models_gpu` on an already-loaded model calls
    `detach(unpatch_all=False)` (and `__del__` does too): that keeps the session. A session is
    never partly offloaded.
    """

    def __init__(self, source: Releasable, nbytes: int, device: str | torch.device) -> None:
        resident = torch_device(device)
        home = resident if resident.type != "cpu" else mm.get_torch_device()
        self.nbytes = max(1, int(nbytes))
        self.vram = self.nbytes if home == resident else 0
        name = getattr(source, "label", None) or getattr(source, "name", type(source).__name__)
        super().__init__(_Session(name), load_device=home, offload_device=CPU, size=self.vram)
        self.source = source
        self.resident = resident
        self.evicting = False
        self.model.device = home
        self.model.model_loaded_weight_memory = self.vram

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


class _Slot(mm.LoadedModel):
    """ComfyUI's entry for a scorer. One holding no VRAM leaves only when ComfyUI asks for
    more than the whole card (`unload_all_models`), never while it makes room."""

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        if (self.model.vram == 0 and memory_to_free is not None
                and memory_to_free < mm.get_total_memory(self.device)):
            return False
        return super().model_unload(memory_to_free, unpatch_weights)


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
        return "cpu" if vram_mode() == "none" else str(mm.get_torch_device())

    @staticmethod
    def margin(device: torch.device) -> int:
        """What ComfyUI keeps free on an accelerator beside any model: 0.8 GiB for inference
        plus `extra_reserved_memory()` (400 MB, 600–700 MB on Windows, or --reserve-vram)."""
        return 0 if device.type == "cpu" else math.ceil(mm.minimum_inference_memory())

    def free(self, device: str | torch.device) -> int:
        dev = torch_device(device)
        if dev.type == "cpu":
            return int(mm.get_free_memory(dev))
        total, torch_cached = mm.get_free_memory(dev, torch_free_too=True)
        return int(total - torch_cached)  # torch's cached blocks serve torch alone

    def reserve(self, nbytes: int, device: str) -> int | None:
        self._evicted.clear()
        dev = torch_device(device)
        if dev.type == "cpu":
            mm.free_memory(nbytes, dev)
            return int(mm.get_free_memory(dev))
        margin = self.margin(dev)
        want = int(nbytes) + margin
        mm.soft_empty_cache()  # torch's cache back to the driver, where other runtimes allocate
        if vram_mode() == "normal":
            for keep in (self._slots(), []):  # ComfyUI's own models first, then other scorers
                if self.free(dev) >= want:
                    break
                cached = mm.get_free_memory(dev, torch_free_too=True)[1]
                mm.free_memory(want + cached, dev, keep_loaded=keep)  # it counts cache as free
                mm.soft_empty_cache()
        return max(0, self.free(dev) - margin)

    def recover(self, model: Releasable | None, device: str) -> bool:
        dev = torch_device(device)
        if dev.type == "cpu":
            return False
        before = self.free(dev)
        keep = [lm for lm in self._slots() if lm.model.source is model]
        unloaded = mm.free_memory(mm.get_total_memory(dev), dev, keep_loaded=keep)
        mm.soft_empty_cache()
        log.info("saiten: out of memory on %s: evicted %d models", dev, len(unloaded))
        return self.free(dev) > before

    def dtype(self, device: str) -> str:
        dev = torch_device(device)
        if mm.should_use_bf16(dev):
            return "bf16"
        return "fp16" if mm.should_use_fp16(dev) else "fp32"

    def loaded(self, model: Releasable, nbytes: int, device: str) -> None:
        """Register `model` with ComfyUI (again: it moves to the front, most recently used)."""
        self._evicted.clear()
        patcher = self.patchers.pop(id(model), None)
        if patcher is not None and (patcher.source is not model  # a dead model's reused id
                                    or patcher.evicting or patcher.nbytes != max(1, int(nbytes))
                                    or patcher.resident != torch_device(device)):
            self._deregister(patcher)
            patcher = None
        patcher = patcher or SessionPatcher(model, nbytes, device)
        self.patchers[id(model)] = patcher
        self._register(patcher)

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
    def _slots() -> list[mm.LoadedModel]:
        return [lm for lm in mm.current_loaded_models if isinstance(lm.model, SessionPatcher)]

    @staticmethod
    def _register(patcher: SessionPatcher) -> None:
        """First among ComfyUI's loaded models (most recently used). Not `load_models_gpu`:
        its own margin would evict a further ~1.2 GB that `reserve` has already counted."""
        for i, lm in enumerate(mm.current_loaded_models):
            if lm.model is patcher:
                lm.currently_used = True
                mm.current_loaded_models.insert(0, mm.current_loaded_models.pop(i))
                return
        slot = _Slot(patcher)
        slot.model_load()
        mm.current_loaded_models.insert(0, slot)

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
