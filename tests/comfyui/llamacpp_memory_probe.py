"""Run inside a real ComfyUI import (a subprocess started by test_llamacpp_memory.py).

A real llama.cpp VLM source (tiny GGUFs) under ComfyUI's own `comfy.model_management`
through `nodes/shared/comfy_memory.py`: scoring registers it, ComfyUI's eviction unloads it (model
and libmtmd context), scoring again reloads it. Prints what happened as JSON on the last
line. Usage: python llamacpp_memory_probe.py <ComfyUI root> <repo root> <tmp dir>
"""

from __future__ import annotations

import json
import sys
import weakref
from pathlib import Path

from probe_boot import boot

comfy_root, repo, tmp = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
boot(comfy_root, repo)

import comfy.model_management as mm  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from saiten_pack.nodes.shared.comfy_memory import POLICY, SessionPatcher  # noqa: E402
from saiten_pack.scoring.sources import create  # noqa: E402

sys.path.insert(0, str(repo / "tests"))
from helpers.models.gguf_models import build_gguf_models  # noqa: E402

models = build_gguf_models(tmp)
src = create("vlm-llamacpp", model_path=models.qwen_text, mmproj_path=models.qwen_mmproj,
             memory=POLICY, method="logprob", comment=False, n_threads=1)
img = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)


def state() -> dict:
    return {
        "registered": [lm.model.model.name for lm in mm.current_loaded_models
                       if isinstance(lm.model, SessionPatcher)],
        "sizes": [int(lm.model.model_size()) for lm in mm.current_loaded_models
                  if isinstance(lm.model, SessionPatcher)],
        "loaded": src.loaded,
    }


facts: dict = {"label": src.label, "memory_bytes": src.memory_bytes()}
facts["scored"] = [c[0].ok for c in src.score([img, img])]
facts["after_score"] = state()
handler = weakref.ref(src._handler)
facts["mtmd_before"] = src._handler.mtmd_ctx is not None

mm.unload_all_models()  # POST /free {"unload_models": true}
facts["after_unload_all"] = state()
facts["handler_alive"] = handler() is not None and handler().mtmd_ctx is not None

facts["rescored"] = [c[0].ok for c in src.score([img])]
facts["after_rescore"] = state()
mm.free_memory(1e30, torch.device("cpu"))  # ComfyUI needs all the memory it can get
facts["after_free_memory"] = state()
print(json.dumps(facts))
