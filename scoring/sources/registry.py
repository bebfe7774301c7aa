"""Scoring backends, looked up by name (the way timm's `create_model` works).

Modules are imported only when their source is created, so a missing optional runtime
(llama-cpp-python, bitsandbytes, …) affects that source alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..core.errors import SourceError
from .base import Source, Unavailable

REGISTRY: dict[str, str] = {
    "technical": ".technical:TechnicalCheck",
    "nudenet": ".onnx.nudenet:NudeNetSource",
    "wd": ".onnx.wd:WDTagger",
    "cl": ".onnx.cl:CLTagger",
    "aesthetic": ".onnx.aesthetic:AnimeAesthetic",
    "aesthetic-head": ".embed.source:AestheticHead",
    "vlm-transformers": ".vlm.transformers:TransformersVLM",
    "vlm-llamacpp": ".vlm.llamacpp:LlamaCppVLM",
    "vlm-http": ".vlm.http:HttpVLM",
    "judge": ".judge.judge:Judge",
    "censor": ".onnx.censor:CensorSource",
    "likeness": ".onnx.likeness:LikenessSource",
}

OFFLINE_DEFAULT = ("nudenet", "technical")
"""The sources that need no download: the CLI's default and the README's first command."""


def source_class(name: str) -> type[Source]:
    """The class registered under `name` (imports its module)."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module, __package__), attr)


def create(name: str, **options: Any) -> Source:
    """A new source by registry name, e.g. `create("wd", model_dir=...)`."""
    return source_class(name)(**options)


def unavailable(name: str, why: str, *, label: str = "") -> Unavailable:
    """An `Unavailable` standing in for the registered source `name` (its kind and axes,
    when its module imports)."""
    try:
        src = source_class(name)
        return Unavailable(name, why, kind=src.kind, provides=tuple(src.provides), label=label)
    except Exception:
        return Unavailable(name, why, label=label)
