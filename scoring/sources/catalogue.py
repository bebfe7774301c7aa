"""What Saiten knows about its sources and models, gathered from every registered
source's `Spec` (see `spec.py`); a backend module is imported only when asked."""

from __future__ import annotations

from .registry import REGISTRY, source_class
from .spec import Spec


def spec(name: str) -> Spec:
    """The spec of the registered source `name` (imports its module)."""
    return source_class(name).spec


def specs() -> dict[str, Spec]:
    """Every registered source's spec, by registry name."""
    return {name: spec(name) for name in REGISTRY}


def weights() -> dict[str, float]:
    """Every label's default weight: each source's own name, then each known model's label
    (what a card carries when no weight is given, in the graph and the CLI alike). A source
    that votes on no axis (the publish check) has none."""
    out: dict[str, float] = {}
    for s in specs().values():
        if not s.provides:
            continue
        out.setdefault(s.name, s.default_weight)
        for m in s.models:
            out.setdefault(m.label, m.weight if m.weight is not None else s.default_weight)
    return out


__all__ = ["spec", "specs", "weights"]
