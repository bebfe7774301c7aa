"""Run inside a real ComfyUI import on its CUDA branch (a subprocess of test_cuda_memory.py).

The device is a `FakeGpu` (tests/comfyui/fake_cuda.py): ComfyUI's own `model_management`
decides; weightless stand-ins book their bytes on the fake card. Prints what happened as
JSON on the last line. Usage: python cuda_memory_probe.py <ComfyUI root> <repo> <scenario> <tmp dir>
where the scenario is JSON: {"gpu": {Props fields}, "cli": {ComfyUI options}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fake_cuda import FakeGpu, GiB, Props, boot_cuda, diffusion_stand_in

comfy_root, repo, scenario = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
gpu = FakeGpu(Props(**scenario.get("gpu", {})))
boot_cuda(comfy_root, repo, gpu, **scenario.get("cli", {}))

import comfy.model_management as mm  # noqa: E402
import numpy as np  # noqa: E402
from saiten_pack.nodes.shared.comfy_memory import POLICY, SessionPatcher  # noqa: E402
from saiten_pack.scoring.sources.base import ScoreContext, Source  # noqa: E402

CUDA0 = mm.get_torch_device()


class StandIn(Source):
    """A scorer whose session would sit on the GPU (or in RAM when `device` is "cpu"): it asks
    the policy for room as onnx_session / llama.cpp do and books its bytes on the fake card."""

    name = "standin"
    kind = "detector"
    provides = ("overall",)

    def __init__(self, label: str, nbytes: int, device: str = "auto", **kw):
        super().__init__(label=label, memory=POLICY, **kw)
        self.nbytes, self.want, self.where = int(nbytes), device, None
        self.reserved: int | None = None
        self.unloads = 0

    @property
    def loaded(self) -> bool:
        return self.where is not None

    def memory_bytes(self) -> int:
        return self.nbytes

    def load(self) -> None:
        if self.where:
            return
        dev = self.memory.device() if self.want == "auto" else self.want
        if dev.startswith("cuda"):
            self.reserved = self.memory.reserve(self.nbytes, dev)
            if self.reserved is None or self.reserved >= self.nbytes:
                gpu.alloc(self.label, self.nbytes)
            else:
                dev = "cpu"
        self.where = dev
        self.memory.loaded(self, self.nbytes, dev)

    def unload(self) -> None:
        if self.where:
            if self.where.startswith("cuda"):
                gpu.release(self.label)
            self.where = None
            self.unloads += 1
            self.memory.released(self)

    def _score(self, images, ctx: ScoreContext):
        return [[self.card(axes={"overall": 50.0})] for _ in images]


img = np.zeros((8, 8, 3), np.float32)


def state(*sources: StandIn, diffusion=None) -> dict:
    out = {
        "registered": [lm.model.model.name for lm in mm.current_loaded_models
                       if isinstance(lm.model, SessionPatcher)],
        "devices": sorted({str(lm.device) for lm in mm.current_loaded_models}),
        "where": {s.label: s.where for s in sources},
        "unloads": {s.label: s.unloads for s in sources},
        "free": gpu.mem_get_info()[0],
    }
    if diffusion is not None:
        out["diffusion"] = diffusion.model.model_loaded_weight_memory
    return out


def evictions(since: int) -> list[str]:
    return [e.split()[1] for e in gpu.log[since:] if e.startswith("release")]


facts: dict = {
    "device": str(CUDA0), "vram_state": mm.vram_state.name, "policy_device": POLICY.device(),
    "margin": POLICY.margin(CUDA0), "minimum_inference_memory": mm.minimum_inference_memory(),
    "extra_reserved": mm.extra_reserved_memory(), "dtype": POLICY.dtype("cuda"),
    "total": gpu.total,
}

# 1. a scorer in RAM on a GPU machine: ComfyUI making room passes it by; unloading all evicts it
diff = diffusion_stand_in(gpu, 5 * GiB)
mm.load_models_gpu([diff])
ram = StandIn("in-ram", 2 * GiB, device="cpu")
ram.score([img])
facts["ram_loaded"] = state(ram, diffusion=diff)
mm.free_memory(gpu.total - 1 * GiB, CUDA0)  # what loading a big model on the card asks
facts["ram_after_making_room"] = state(ram, diffusion=diff)
mm.unload_all_models()  # the "Free memory" button, POST /free, ComfyUI's OOM handler
facts["ram_after_unload_all"] = state(ram, diffusion=diff)

# 2. reservations: the diffusion model goes before other scorers, ComfyUI's margin stays free
mm.load_models_gpu([diff])
facts["diffusion_loaded"] = state(diffusion=diff)
small = StandIn("small", 1 * GiB)
small.score([img])
facts["after_small"] = state(small, diffusion=diff)
big = StandIn("big", 2 * GiB)
mark = len(gpu.log)
big.score([img])
facts["after_big"] = state(small, big, diffusion=diff)
facts["after_big_evicted"] = evictions(mark)
facts["big_reserved"] = big.reserved

# 3. torch's cached blocks are no room for onnxruntime / llama.cpp
mm.unload_all_models()
mm.load_models_gpu([diff])
gpu.stuck_cache = 1 * GiB
cached = StandIn("after-cache", 1 * GiB)
cached.score([img])
facts["cache"] = state(cached, diffusion=diff) | {
    "reserved": cached.reserved, "comfy_free": int(mm.get_free_memory(CUDA0))}
gpu.stuck_cache = 0

# 4. the KSampler's turn: ComfyUI loads the diffusion model again and evicts scorers
mm.unload_all_models()
mm.load_models_gpu([diff])
s1, s2 = StandIn("tagger", 1 * GiB), StandIn("vlm", 2 * GiB)
s1.score([img])
s2.score([img])
facts["before_ksampler"] = state(s1, s2, diffusion=diff)
mark = len(gpu.log)
diff2 = diffusion_stand_in(gpu, 6 * GiB)  # the next run's model (a different checkpoint)
mm.load_models_gpu([diff2])
facts["ksampler_evicted"] = evictions(mark)
facts["after_ksampler"] = state(s1, s2, diffusion=diff2)

# 5. out of memory while a scorer runs: the policy evicts everything else, not the scorer
mm.unload_all_models()
mm.load_models_gpu([diff])
s1.score([img])
free_before = gpu.mem_get_info()[0]
facts["recovered"] = POLICY.recover(s1, "cuda")
facts["after_recover"] = state(s1, diffusion=diff) | {"free_before": free_before}

# 6. onnxruntime's arena fails an allocation while running: ComfyUI evicts, the run is retried
import onnxruntime as ort  # noqa: E402
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException  # noqa: E402
from saiten_pack.scoring.sources.onnx.session import OnnxModel  # noqa: E402

sys.path.insert(0, str(repo / "tests"))
sys.path.append(str(repo))  # the tiny models' builders read `scoring` (after ComfyUI's `nodes`)
from helpers.models.onnx_models import build_wd, wd_tags  # noqa: E402

mm.unload_all_models()
mm.load_models_gpu([diff])
tags = wd_tags()
wd = build_wd(Path(sys.argv[4]), tags, np.eye(3, len(tags)), np.zeros(len(tags)), size=32)


class FailsOnce:
    def __init__(self, session):
        self.session, self.failed = session, False

    def run(self, *args):
        if not self.failed:
            self.failed = True
            raise RuntimeException("Failed to allocate memory for requested buffer of size 1024")
        return self.session.run(*args)

    def __getattr__(self, name):
        return getattr(self.session, name)


if not scenario.get("cli"):  # (with --novram nothing sits on the card to evict)
    session = FailsOnce(ort.InferenceSession(str(wd / "model.onnx"),
                                             providers=["CPUExecutionProvider"]))
    onnx = OnnxModel(wd / "model.onnx", session, 1 << 20, "cuda:0", memory=POLICY)
    POLICY.loaded(onnx, onnx.nbytes, "cuda:0")
    out = onnx.run(np.full((1, 32, 32, 3), 255.0, np.float32))[0]
    facts["onnx_retry"] = {"retried": session.failed, "shape": list(out.shape),
                           "diffusion": diff.model.model_loaded_weight_memory,
                           "registered": state()["registered"]}

# 7. transformers: ComfyUI picks the precision; a model that cannot fit is refused
from helpers.models.tiny_hf import build_qwen2vl  # noqa: E402
from saiten_pack.scoring.sources import SourceError, create  # noqa: E402

vlm = create("vlm-transformers", model_dir=build_qwen2vl(Path(sys.argv[4]) / "tiny-qwen2vl"),
             memory=POLICY)
facts["vlm_dtype"] = vlm._dtype_name("cuda")
mm.unload_all_models()
gpu.other = gpu.total - GiB  # another program holds all but 1 GiB: less than the margin
try:
    vlm.load()
    facts["vlm_refused"] = None
except SourceError as e:
    facts["vlm_refused"] = str(e)
facts["vlm_loaded"] = vlm.loaded
gpu.other = 0

print(json.dumps(facts))
