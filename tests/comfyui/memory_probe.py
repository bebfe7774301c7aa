"""Run inside a real ComfyUI import (a subprocess started by test_comfy_memory.py).

Drives `nodes/shared/comfy_memory.py` against ComfyUI's own `comfy.model_management` with a real
Source holding a real onnxruntime session, and prints what happened as JSON on the last
line. Usage: python memory_probe.py <ComfyUI root> <repo root>
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

from probe_boot import boot

boot(Path(sys.argv[1]), Path(sys.argv[2]))

import comfy.model_management as mm  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from comfy.model_patcher import ModelPatcher  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from saiten_pack.nodes.shared.comfy_memory import POLICY, SessionPatcher, torch_device  # noqa: E402
from saiten_pack.scoring.sources.base import ScoreContext, Source  # noqa: E402


def tiny_onnx() -> bytes:
    """y = mean(x) * 100 over an [N,3] input: a real model, built in a millisecond."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [1], [100.0])
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=1, axes=[1]),
         helper.make_node("Mul", ["m", "s"], ["y"])],
        "probe", [x], [y], [scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString()


class OnnxProbe(Source):
    """A real source: an onnxruntime session that scores `overall` from the mean colour."""

    name = "probe"
    kind = "detector"
    provides = ("overall",)
    MODEL = tiny_onnx()

    def __init__(self, label: str, **kw):
        super().__init__(label=label, **kw)
        self.session: ort.InferenceSession | None = None
        self.loads = self.unloads = 0

    @property
    def loaded(self) -> bool:
        return self.session is not None

    def memory_bytes(self) -> int:
        return 64 * 1024 * 1024

    def load(self) -> None:
        if self.session is None:
            self.memory.reserve(self.memory_bytes(), "cpu")
            self.session = ort.InferenceSession(self.MODEL, providers=["CPUExecutionProvider"])
            self.loads += 1
            self.memory.loaded(self, self.memory_bytes(), "cpu")

    def unload(self) -> None:
        if self.session is not None:
            self.session = None
            self.unloads += 1
            self.memory.released(self)

    def _score(self, images, ctx: ScoreContext):
        x = np.stack([np.nan_to_num(im).reshape(-1, 3).mean(0) for im in images]).astype("f4")
        y = self.session.run(None, {"x": x})[0]
        return [[self.card(axes={"overall": float(v[0])})] for v in y]


def registered() -> list[str]:
    return [lm.model.model.name for lm in mm.current_loaded_models
            if isinstance(lm.model, SessionPatcher)]


def state(*sources: OnnxProbe) -> dict:
    return {
        "registered": registered(),
        "policy": sorted(p.model.name for p in POLICY.patchers.values()),
        "loaded": {s.label: s.loaded for s in sources},
        "loads": {s.label: s.loads for s in sources},
        "unloads": {s.label: s.unloads for s in sources},
        "all_models": len(mm.current_loaded_models),
    }


facts: dict = {"device": str(mm.get_torch_device()), "torch_device_cpu": str(torch_device("cpu"))}
img = np.full((8, 8, 3), 0.5, dtype=np.float32)
a, b = OnnxProbe("probe-a", memory=POLICY), OnnxProbe("probe-b", memory=POLICY)

sheet = a.score([img, img])
facts["score"] = [c[0].axes.get("overall") for c in sheet]
facts["after_load"] = state(a)
facts["size"] = [int(lm.model.model_size()) for lm in mm.current_loaded_models]

patcher = POLICY.patchers[id(a)]
mm.load_models_gpu([patcher])  # already loaded: ComfyUI detaches it with unpatch_all=False
facts["after_reload_same"] = state(a)

mm.free_memory(1024, torch.device("cpu"))  # plenty of RAM: nothing to evict
facts["after_small_free"] = state(a)

mm.free_memory(1e30, torch.device("cpu"))  # what ComfyUI does when it needs everything
facts["after_free_memory"] = state(a)
del patcher
gc.collect()

a.score([img])
facts["after_rescore"] = state(a)
mm.unload_all_models()  # POST /free {"unload_models": true}
facts["after_unload_all"] = state(a)

# two sources and a real torch model: ComfyUI's eviction loop must see consistent indices
a.score([img])
b.score([img])
torch_model = ModelPatcher(torch.nn.Linear(4, 4), torch.device("cpu"), torch.device("cpu"))
mm.load_models_gpu([torch_model])
facts["three_loaded"] = state(a, b)
mm.unload_all_models()
facts["after_unload_three"] = state(a, b)

# a source that lets go by itself (keep_loaded off) tells ComfyUI
a.score([img])
a.unload()
facts["after_self_unload"] = state(a)
mm.unload_all_models()
facts["after_self_unload_then_free"] = state(a)

# a dropped patcher's __del__ (detach(unpatch_all=False)) must not unload anything
a.score([img])
facts["before_gc"] = state(a)
stray = SessionPatcher(b, 1, "cpu")
del stray
gc.collect()
facts["after_stray_gc"] = state(a, b)

# a new model whose id() is a dead model's: it gets its own patcher, and eviction unloads it
mm.unload_all_models()
a.score([img])
c = OnnxProbe("probe-c", memory=POLICY)
POLICY.patchers[id(c)] = POLICY.patchers.pop(id(a))  # what id reuse looks like to the policy
c.score([img])
facts["after_id_reuse"] = state(a, c)
mm.unload_all_models()
facts["after_id_reuse_free"] = state(a, c)

print(json.dumps(facts))
