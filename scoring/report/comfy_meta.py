"""What a ComfyUI PNG says about how it was made: seed, steps, sampler, checkpoint, prompt.

ComfyUI's SaveImage writes the API-format graph as the `prompt` text chunk and the UI-format
graph as `workflow`. We find the sampler (KSampler-family node) and follow links through the
graph: `positive` back to the text encoder, `model` back through LoRA / patch nodes to the
checkpoint loader, a seed or text fed by a primitive node back to its value. When only a
`workflow` chunk is present, the known nodes' widget values are mapped to their input names.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from ..core.images import MAX_PIXELS

FIELDS = ("seed", "steps", "cfg", "sampler", "scheduler", "denoise", "checkpoint", "loras",
          "prompt", "negative")
"""The keys `read_meta` may return, in report column order."""

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
SEED_KEYS = ("seed", "noise_seed")
TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_l", "prompt", "string", "value")
CONDITIONING_LINKS = ("conditioning", "conditioning_to", "conditioning_1", "positive", "cond",
                      "conditioning_from")
MODEL_KEYS = ("ckpt_name", "unet_name", "model_name", "gguf_name")
PRIMITIVE_KEYS = ("value", "seed", "noise_seed", "int", "float", "string", "text", "number")

WIDGETS: dict[str, tuple[str, ...]] = {
    # UI-format widget order of the nodes whose values we read from a `workflow` chunk
    # ("" = a widget we skip, e.g. control_after_generate)
    "KSampler": ("seed", "", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "", "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step",
                         "return_with_leftover_noise"),
    "CLIPTextEncode": ("text",),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "RandomNoise": ("noise_seed", ""),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "PrimitiveNode": ("value", ""),
    "PrimitiveInt": ("value", ""),
    "PrimitiveString": ("value",),
    "PrimitiveStringMultiline": ("value",),
}

Graph = Mapping[str, Mapping[str, Any]]


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], (str, int)) \
        and isinstance(v[1], int)


class _Reader:
    def __init__(self, graph: Graph) -> None:
        self.g = graph

    def node(self, link: Any) -> Mapping[str, Any] | None:
        n = self.g.get(str(link[0])) if _is_link(link) else None
        return n if isinstance(n, Mapping) else None

    def inputs(self, node: Mapping[str, Any] | None) -> Mapping[str, Any]:
        i = (node or {}).get("inputs")
        return i if isinstance(i, Mapping) else {}

    def value(self, node: Mapping[str, Any] | None, keys: tuple[str, ...], depth: int = 0) -> Any:
        """The first of `keys` among the node's inputs, following a link to a primitive or to
        a node with the same input (e.g. a seed node) up to a few steps."""
        ins = self.inputs(node)
        for k in keys:
            if k not in ins:
                continue
            v = ins[k]
            if not _is_link(v):
                return v
            if depth < 8:
                src = self.node(v)
                found = self.value(src, keys + PRIMITIVE_KEYS, depth + 1)
                if found is not None:
                    return found
        return None

    def follow(self, node: Mapping[str, Any] | None, via: tuple[str, ...],
               want: tuple[str, ...], depth: int = 0) -> tuple[Any, list[Mapping[str, Any]]]:
        """Walk links through inputs `via` until a node has one of `want` (as a value);
        returns (that value, the nodes passed)."""
        passed: list[Mapping[str, Any]] = []
        while node is not None and depth < 32:
            passed.append(node)
            found = self.value(node, want)
            if isinstance(found, (str, int, float)):
                return found, passed
            ins = self.inputs(node)
            nxt = next((ins[k] for k in via if _is_link(ins.get(k))), None)
            node, depth = self.node(nxt), depth + 1
        return None, passed

    def text(self, link: Any) -> str | None:
        node = self.node(link)
        if node is not None and node.get("class_type") in ("CFGGuider", "BasicGuider",
                                                          "DualCFGGuider"):
            link = self.inputs(node).get("positive", self.inputs(node).get("conditioning"))
            node = self.node(link)
        value, _ = self.follow(node, CONDITIONING_LINKS, TEXT_KEYS)
        return value if isinstance(value, str) else None

    def model(self, link: Any) -> tuple[str | None, list[str]]:
        node = self.node(link)
        if node is not None and "guider" in node.get("class_type", "").lower():
            node = self.node(self.inputs(node).get("model"))
        value, passed = self.follow(node, ("model", "unet"), MODEL_KEYS)
        loras = [str(n["inputs"]["lora_name"]) for n in passed
                 if isinstance(self.inputs(n).get("lora_name"), str)]
        return (value if isinstance(value, str) else None), loras[::-1]


def _samplers(graph: Graph) -> list[tuple[str, Mapping[str, Any]]]:
    found = [(k, n) for k, n in graph.items() if isinstance(n, Mapping)
             and (n.get("class_type") in SAMPLERS
                  or ("sampler" in str(n.get("class_type", "")).lower()
                      and any(x in (n.get("inputs") or {}) for x in ("positive", "guider"))))]
    fed = {str(v[0]) for _, n in found for k, v in (n.get("inputs") or {}).items()
           if k in ("latent_image", "latent") and _is_link(v)}
    return [(k, n) for k, n in found if k not in fed] or found  # the last stage first


def from_prompt(graph: Graph) -> dict[str, Any]:
    """Seed, steps, sampler, checkpoint and prompts of an API-format graph ({} when it has
    no sampler)."""
    samplers = _samplers(graph)
    if not samplers:
        return {}
    r = _Reader(graph)
    _, ks = samplers[0]
    ins = r.inputs(ks)
    out: dict[str, Any] = {
        "seed": r.value(ks, SEED_KEYS) if any(k in ins for k in SEED_KEYS)
        else r.value(r.node(ins.get("noise")), SEED_KEYS),
        "steps": r.value(ks, ("steps",)) or r.value(r.node(ins.get("sigmas")), ("steps",)),
        "cfg": r.value(ks, ("cfg",)) or r.value(r.node(ins.get("guider")), ("cfg",)),
        "sampler": r.value(ks, ("sampler_name",))
        or r.value(r.node(ins.get("sampler")), ("sampler_name",)),
        "scheduler": r.value(ks, ("scheduler",))
        or r.value(r.node(ins.get("sigmas")), ("scheduler",)),
        "denoise": r.value(ks, ("denoise",)),
        "prompt": r.text(ins.get("positive", ins.get("guider"))),
        "negative": r.text(ins.get("negative")) if "negative" in ins else None,
    }
    out["checkpoint"], loras = r.model(ins.get("model", ins.get("guider")))
    out["loras"] = loras or None
    return {k: out[k] for k in FIELDS if out.get(k) not in (None, "")}


def workflow_to_prompt(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A UI-format workflow → an API-like graph of its nodes (widget values named for the
    nodes in WIDGETS, links as [node id, slot])."""
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, list) and len(link) >= 5:
            links[link[0]] = [str(link[1]), int(link[2])]
        elif isinstance(link, Mapping) and "id" in link:
            links[link["id"]] = [str(link.get("origin_id")), int(link.get("origin_slot", 0))]
    graph: dict[str, dict[str, Any]] = {}
    for node in workflow.get("nodes") or []:
        if not isinstance(node, Mapping):
            continue
        kind = str(node.get("type", ""))
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        if isinstance(values, list):
            names = WIDGETS.get(kind, ())
            inputs.update({n: v for n, v in zip(names, values, strict=False) if n})
        for slot in node.get("inputs") or []:
            if isinstance(slot, Mapping) and slot.get("link") in links:
                inputs[str(slot.get("name"))] = links[slot["link"]]
        graph[str(node.get("id"))] = {"class_type": kind, "inputs": inputs}
    return graph


def from_text(text: Mapping[str, str]) -> dict[str, Any]:
    """The metadata in a PNG's text chunks (`prompt` first, else `workflow`); {} if none."""
    for key, convert in (("prompt", lambda d: d), ("workflow", workflow_to_prompt)):
        raw = text.get(key)
        if not raw:
            continue
        try:
            data = json.loads(raw)
            found = from_prompt(convert(data)) if isinstance(data, Mapping) else {}
        except (ValueError, TypeError, AttributeError, RecursionError):
            continue
        if found:
            return found
    return {}


def text_chunks(path: str | Path) -> dict[str, str]:
    """The text an image file carries (PNG text chunks, …), read without decoding a large
    image: the chunks before its pixels always, those after only for an image within
    `MAX_PIXELS` (Pillow decodes the pixels to reach them). {} for a file PIL refuses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as img:
                found = dict(img.info or {})
                if img.size[0] * img.size[1] <= MAX_PIXELS:
                    found.update(getattr(img, "text", None) or {})
    except Exception:  # any file PIL cannot open (a bomb, a broken file): no text
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ComfyUI metadata of an image file ({} for a file without any, or not a PNG)."""
    return from_text(text_chunks(path))
