"""Thin ComfyUI adapters over `scoring/`. Each module lists its nodes in `NODES`."""

from __future__ import annotations

import importlib
import logging

from comfy_api.latest import io

log = logging.getLogger("saiten")

MODULES = ("tagger", "aesthetic", "vlm", "judge", "aggregate", "filter", "report", "rubric",
           "diagnostics", "shared.routes", "publish")


def all_nodes() -> list[type[io.ComfyNode]]:
    """Every node of the pack; a family that fails to import is logged and skipped, so one
    broken module never takes the other nodes down with it."""
    nodes: list[type[io.ComfyNode]] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except Exception:
            log.exception("saiten: nodes.%s failed to import", name)
            continue
        nodes.extend(module.NODES)
    return nodes
