"""Test-only ComfyUI nodes (loaded by tests/comfyui/comfy_harness.py, never shipped).

`SaitenTestPoison` replaces one image of a batch with what a broken VAE decode gives (NaN,
inf, black); GET /saiten_test/loaded lists ComfyUI's loaded models, so tests can see our
scorer sessions registered and evicted.
"""

import os
import sys

import comfy.model_management as mm
from aiohttp import web
from server import PromptServer


class SaitenTestPoison:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "poison"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE",),
            "index": ("INT", {"default": 0, "min": 0, "max": 4096}),
            "kind": (["nan", "inf", "black", "half-nan"],),
        }}

    def poison(self, images, index, kind):
        out = images.clone()
        value = {"nan": float("nan"), "inf": float("inf"), "black": 0.0}.get(kind)
        if kind == "half-nan":
            out[index, : out.shape[1] // 2] = float("nan")
        else:
            out[index] = value
        return (out,)


def _loaded_models():
    rows = []
    for lm in list(mm.current_loaded_models):  # a snapshot: the prompt worker may mutate it
        m = lm.model
        if m is None:
            continue
        source = getattr(m, "source", None)
        rows.append({
            "patcher": type(m).__name__,
            "name": getattr(m.model, "name", type(m.model).__name__),
            "device": str(lm.device),
            "size": int(m.model_size()),
            "source_loaded": getattr(source, "loaded", None) if source is not None else None,
        })
    return rows


def _cached_sources():
    """The pack's cached sources (nodes/common.py `_SOURCES`) and whether each is loaded."""
    rows = []
    for name, module in list(sys.modules.items()):
        if name.endswith(".nodes.common") and hasattr(module, "_SOURCES"):
            for source in list(module._SOURCES.values()):
                rows.append({"name": source.label, "loaded": bool(source.loaded)})
    return rows


@PromptServer.instance.routes.get("/saiten_test/loaded")
async def loaded(request):
    return web.json_response({"models": _loaded_models(), "sources": _cached_sources()})


@PromptServer.instance.routes.get("/saiten_test/env")
async def env(request):
    """One environment variable of the server process (for the harness's own test)."""
    return web.json_response({"value": os.environ.get(request.query.get("name", ""))})


NODE_CLASS_MAPPINGS = {"SaitenTestPoison": SaitenTestPoison}
