"""No stale failures: a node whose last result held abstentions caused by faults (network,
budget, refusal, a source that could not run) runs again when the same graph is queued
again; a fully scored result stays cached.

ComfyUI reuses a node's output while its inputs and `fingerprint_inputs` are unchanged. The
fingerprint here is a counter per node that `record` bumps after a result with a fault, so
the next queue of the identical graph sees a new value and re-executes the node (and what
follows it). An abstention made by design (the judge's two-stage skip, nothing to judge) is
marked `extras["stable"]` and does not count.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...scoring.core.cards import ScoreCard

_GENERATION: dict[tuple[str, str], int] = {}


def has_faults(sheet: Iterable[Iterable[ScoreCard]]) -> bool:
    return any(not c.ok and not c.extras.get("stable") for cards in sheet for c in cards)


def fingerprint(node: str, node_id: str | None) -> int:
    """What `fingerprint_inputs` returns for this node."""
    return _GENERATION.get((node, str(node_id)), 0)


def record(node: str, node_id: str | None, sheet: Iterable[Iterable[ScoreCard]]) -> bool:
    """Note this run's result; True when it held faults (so the next queue re-executes)."""
    if not has_faults(sheet):
        return False
    key = (node, str(node_id))
    _GENERATION[key] = _GENERATION.get(key, 0) + 1
    return True
