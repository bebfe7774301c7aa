"""Test-only ComfyUI nodes (loaded by tests/comfyui/comfy_harness.py, never shipped).

`SaitenTestPoison` replaces one image of a batch with what a broken VAE decode gives (NaN,
inf, black); `SaitenTestLatent` makes a LATENT whose item i is filled with i (optionally with
a noise_mask and batch_index); `SaitenTestTint` paints each image of a batch a chosen colour;
`SaitenTestCLIPVision` loads a tiny saved encoder as ComfyUI's CLIP_VISION;
`SaitenTestDigest` shows a sha256 per image / latent item (and
the latent's batch_index and mask), so tests can see exactly which items went where;
`SaitenTestLoadedModels` shows ComfyUI's loaded models at the moment it runs (inside a
prompt); GET /saiten_test/loaded lists ComfyUI's loaded models, so tests can see our
scorer sessions registered and evicted.
"""

import hashlib
import os
import sys

import comfy.model_management as mm
import torch
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


class SaitenTestLatent:
    CATEGORY = "testing"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "batch_size": ("INT", {"default": 4, "min": 1, "max": 64}),
            "extras": (["none", "mask", "one mask", "batch_index", "both"],),
        }}

    def make(self, batch_size, extras):
        samples = torch.arange(batch_size, dtype=torch.float32).view(-1, 1, 1, 1)
        out = {"samples": samples.expand(batch_size, 4, 8, 8).clone()}
        if extras in ("mask", "both"):
            out["noise_mask"] = samples.expand(batch_size, 1, 64, 64) / 100
        if extras == "one mask":
            out["noise_mask"] = torch.full((1, 1, 64, 64), 0.5)
        if extras in ("batch_index", "both"):
            out["batch_index"] = [10 + i for i in range(batch_size)]
        return (out,)


class SaitenTestTint:
    """Image i painted a colour from `colours` ("r,g,b;r,g,b;…", 0–1) over 70 % of its pixels:
    images whose content a test chooses, from a real generated batch."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "tint"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "colours": ("STRING", {"default": ""})}}

    def tint(self, images, colours):
        out = images.clone()
        for i, c in enumerate(colours.split(";")[: out.shape[0]]):
            rgb = torch.tensor([float(x) for x in c.split(",")], dtype=out.dtype)
            out[i] = 0.3 * out[i] + 0.7 * rgb
        return (out,)


class SaitenTestCLIPVision:
    """A CLIP_VISION as Load CLIP Vision gives one, from a tiny saved encoder folder: ComfyUI's
    own ClipVisionModel built from the folder's comfy_config.json (ComfyUI's loader only knows
    the full-size configs) with the folder's model.safetensors loaded by ComfyUI."""

    CATEGORY = "testing"
    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": ""})}}

    def load(self, folder):
        import comfy.clip_vision
        import comfy.utils

        cv = comfy.clip_vision.ClipVisionModel(os.path.join(folder, "comfy_config.json"))
        cv.load_sd(comfy.utils.load_torch_file(os.path.join(folder, "model.safetensors")))
        return (cv,)


def _digest(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class SaitenTestDigest:
    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "digest"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"images": ("IMAGE",), "latent": ("LATENT",),
                             "value": ("FLOAT", {"forceInput": True})}}

    def digest(self, images=None, latent=None, value=None):
        d = {} if value is None else {"value": value}
        if images is not None:
            d["images"] = [_digest(im) for im in images]
            d["image_shape"] = list(images.shape)
        if latent is not None:
            d["latents"] = [_digest(x) for x in latent["samples"]]
            d["latent_shape"] = list(latent["samples"].shape)
            d["first_values"] = [float(x.flatten()[0]) for x in latent["samples"]]
            d["batch_index"] = latent.get("batch_index")
            mask = latent.get("noise_mask")
            d["mask"] = None if mask is None else [float(m.flatten()[0]) for m in mask]
        return {"ui": {"digest": [d]}}


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
    """The pack's loaded-model handles (nodes/shared/common.py `HANDLES`) and whether each is
    loaded."""
    rows = []
    for name, module in list(sys.modules.items()):
        if name.endswith(".nodes.shared.common") and hasattr(module, "HANDLES"):
            for source in module.HANDLES:
                rows.append({"name": source.label, "loaded": bool(source.loaded)})
    return rows


class SaitenTestLoadedModels:
    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "snapshot"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"after": ("*",)}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True  # any type: it only orders this node after `after`

    def snapshot(self, after):
        return {"ui": {"loaded": _loaded_models()}}


@PromptServer.instance.routes.get("/saiten_test/loaded")
async def loaded(request):
    return web.json_response({"models": _loaded_models(), "sources": _cached_sources()})


@PromptServer.instance.routes.get("/saiten_test/env")
async def env(request):
    """One environment variable of the server process (for the harness's own test)."""
    return web.json_response({"value": os.environ.get(request.query.get("name", ""))})


NODE_CLASS_MAPPINGS = {"SaitenTestPoison": SaitenTestPoison,
                       "SaitenTestTint": SaitenTestTint,
                       "SaitenTestCLIPVision": SaitenTestCLIPVision,
                       "SaitenTestLatent": SaitenTestLatent,
                       "SaitenTestDigest": SaitenTestDigest,
                       "SaitenTestLoadedModels": SaitenTestLoadedModels}
