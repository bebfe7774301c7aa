"""What one NVIDIA card would answer, for driving ComfyUI's real CUDA branches on a CPU machine.

`FakeGpu.install()` replaces only the calls that ask the hardware or the driver
(`torch.cuda.is_available`, `current_device`, `mem_get_info`, `memory_stats`,
`get_device_properties`, `is_bf16_supported`, `empty_cache`…) before
`comfy.model_management` is imported, so ComfyUI takes its CUDA branch: the device is
`cuda:0`, free memory is the ledger below. Nothing is ever allocated: the weightless stand-ins
(`DiffusionStandIn`, the probes' scorers) book their bytes with `alloc` / `release`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

GiB = 1 << 30


@dataclass
class Props:
    """`torch.cuda.get_device_properties`: what ComfyUI reads to choose a precision."""

    name: str = "NVIDIA GeForce RTX 3070"
    major: int = 8
    minor: int = 6
    total_memory: int = 8 * GiB
    multi_processor_count: int = 46
    gcnArchName: str = ""


@dataclass
class FakeGpu:
    """One card: its total memory, what the stand-ins booked, torch's cached blocks (`cache`,
    given back by `empty_cache`; `stuck_cache` stays: fragmented segments) and `other`
    processes' memory."""

    props: Props = field(default_factory=Props)
    other: int = 0
    cache: int = 0
    stuck_cache: int = 0
    allocs: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.props.total_memory

    @property
    def used(self) -> int:
        return self.other + self.cache + self.stuck_cache + sum(self.allocs.values())

    def alloc(self, key: str, nbytes: int) -> None:
        """Book `nbytes` for `key`; raises torch's OutOfMemoryError when the card is full."""
        if nbytes > self.total - self.used:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {nbytes >> 20} MiB")
        self.allocs[key] = self.allocs.get(key, 0) + int(nbytes)
        self.log.append(f"alloc {key}")

    def release(self, key: str, nbytes: int | None = None) -> None:
        have = self.allocs.pop(key, 0)
        if nbytes is not None and nbytes < have:
            self.allocs[key] = have - int(nbytes)
        self.log.append(f"release {key}")

    def mem_get_info(self, device=None) -> tuple[int, int]:
        return self.total - self.used, self.total

    def memory_stats(self, device=None) -> dict[str, int]:
        return {"active_bytes.all.current": 0,
                "reserved_bytes.all.current": self.cache + self.stuck_cache}

    def empty_cache(self) -> None:
        self.cache = 0

    def install(self) -> FakeGpu:
        c = torch.cuda
        c.is_available = lambda: True
        c.device_count = lambda: 1
        c.current_device = lambda: 0
        c.mem_get_info = self.mem_get_info
        c.memory_stats = self.memory_stats
        c.get_device_properties = lambda device=None: self.props
        c.get_device_name = lambda device=None: self.props.name
        c.get_device_capability = lambda device=None: (self.props.major, self.props.minor)
        c.is_bf16_supported = lambda including_emulation=True: True  # as torch answers on cc 7
        c.empty_cache = self.empty_cache
        c.ipc_collect = lambda: None
        c.synchronize = lambda device=None: None
        return self


_ids = itertools.count()


def diffusion_stand_in(gpu: FakeGpu, nbytes: int):
    """A weightless ModelPatcher of `nbytes` that ComfyUI loads, partly offloads and evicts
    like a diffusion model; its bytes on the card are booked in `gpu`."""
    from comfy.model_patcher import ModelPatcher

    class Weightless(torch.nn.Module):
        pass

    class DiffusionStandIn(ModelPatcher):
        def __init__(self) -> None:
            dev = torch.device("cuda", 0)
            super().__init__(Weightless(), load_device=dev, offload_device=torch.device("cpu"),
                             size=nbytes)
            self.key = f"diffusion{next(_ids)}"
            self.model.device = dev

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            have = self.model.model_loaded_weight_memory
            add = int(min(self.size - have, extra_memory))
            if add > 0:
                gpu.alloc(self.key, add)
                self.model.model_loaded_weight_memory = have + add
            return max(add, 0)

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            have = self.model.model_loaded_weight_memory
            out = int(min(have, memory_to_free))
            gpu.release(self.key, out)
            self.model.model_loaded_weight_memory = have - out
            return out

        def detach(self, unpatch_all=True):
            super().detach(unpatch_all=False)
            if unpatch_all and self.model.model_loaded_weight_memory:
                gpu.release(self.key)
                self.model.model_loaded_weight_memory = 0
            return self.model

    return DiffusionStandIn()


def boot_cuda(comfy_root, repo, gpu: FakeGpu, **cli: object):
    """ComfyUI importable on its CUDA branch over `gpu` (with these command-line options, e.g.
    lowvram=True, reserve_vram=2.0), and the pack imported as `saiten_pack`."""
    import importlib.util
    import sys

    sys.path.insert(0, str(comfy_root))
    from comfy.cli_args import args

    for key, value in cli.items():
        setattr(args, key, value)
    gpu.install()
    import comfy.model_management  # noqa: F401  (now on the CUDA branch)

    spec = importlib.util.spec_from_file_location(
        "saiten_pack", repo / "__init__.py", submodule_search_locations=[str(repo)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["saiten_pack"] = pack
    spec.loader.exec_module(pack)
    return pack
