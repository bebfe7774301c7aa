"""Scoring backends, looked up by name (the way timm's `create_model` works).

Modules are imported only when their source is created, so a missing optional runtime
(llama-cpp-python, bitsandbytes, …) affects that source alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import Cancelled, SourceError
from .base import Result, ScoreContext, Source, Unavailable

REGISTRY: dict[str, str] = {
    "technical": ".technical:TechnicalCheck",
    "nudenet": ".nudenet:NudeNetSource",
    "wd": ".wd:WDTagger",
    "cl": ".cl:CLTagger",
    "vlm-transformers": ".vlm_transformers:TransformersVLM",
    "vlm-llamacpp": ".vlm_llamacpp:LlamaCppVLM",
    "vlm-http": ".vlm_http:HttpVLM",
    "judge": ".judge:Judge",
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


__all__ = [
    "OFFLINE_DEFAULT",
    "REGISTRY",
    "Cancelled",
    "Result",
    "ScoreContext",
    "Source",
    "SourceError",
    "Unavailable",
    "create",
    "source_class",
]
