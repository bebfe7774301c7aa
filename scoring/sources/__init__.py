"""Scoring backends: the interface (`base`), what each declares (`spec`), the registry by
name (`registry`) and the catalogue over it (`catalogue`); one subpackage per family of
runtimes (`onnx/`, `vlm/`, `judge/`) holding its helpers, and the numpy-only `technical`."""

from __future__ import annotations

from ..core.errors import Cancelled, SourceError
from .base import Result, ScoreContext, Source, Unavailable
from .registry import OFFLINE_DEFAULT, REGISTRY, create, source_class, unavailable

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
    "unavailable",
]
