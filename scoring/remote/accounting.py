"""What remote calls cost: the per-run budget, the editable price table, the JSONL cost log."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import as_write_error, write_text
from ..core.errors import BudgetExhausted
from .keys import mask

log = logging.getLogger("saiten")


@dataclass
class Budget:
    """A per-run limit on calls sent and USD spent (None or 0: no limit). Thread-safe.

    A call reserves the most it could cost (`estimate`, from its own size) before it is
    sent, so the limit is never overshot; `settle` replaces that with what it cost."""

    max_calls: int | None = None
    max_usd: float | None = None
    calls: int = 0
    usd: float = 0.0
    reserved: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reason(self, estimate: float = 0.0) -> str | None:
        """Why no further call (that may cost `estimate`) may be made, or None."""
        if self.max_calls and self.calls >= self.max_calls:
            return f"budget exhausted: {self.calls} of max {self.max_calls} calls made"
        if self.max_usd and self.usd >= self.max_usd:
            return f"budget exhausted: ${self.usd:.4f} of max ${self.max_usd:.4f} spent"
        if self.max_usd and self.usd + self.reserved + estimate > self.max_usd:
            return (f"budget: this call could cost up to ${estimate:.4f} and ${self.usd:.4f} "
                    f"of max ${self.max_usd:.4f} is spent; not sent")
        return None

    def take_call(self, estimate: float = 0.0) -> None:
        """Count one call about to be sent and reserve `estimate` USD, or raise
        BudgetExhausted."""
        with self._lock:
            why = self.reason(estimate)
            if why:
                raise BudgetExhausted(why)
            self.calls += 1
            self.reserved += estimate

    def settle(self, estimate: float, usd: float) -> None:
        """The call that reserved `estimate` cost `usd`."""
        with self._lock:
            self.reserved = max(0.0, self.reserved - estimate)
            self.usd += usd

    def spend(self, usd: float) -> None:
        self.settle(0.0, usd)


DEFAULT_PRICES: dict[str, dict[str, float]] = {
    # USD per 1M tokens (docs.x.ai model pages); edit prices.json next to the cost log.
    "grok-4-1-fast-non-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-1-fast-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-fast-non-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-fast-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4.20-non-reasoning": {"input": 1.25, "cached_input": 0.20, "output": 2.50},
    "grok-4.20-reasoning": {"input": 1.25, "cached_input": 0.20, "output": 2.50},
    "grok-4": {"input": 3.00, "cached_input": 0.75, "output": 15.00},
    "grok-3-mini": {"input": 0.30, "cached_input": 0.075, "output": 0.50},
}


class Prices:
    """USD per 1M tokens by model name, from a JSON file the user can edit.

    `Prices.at(path)` writes the defaults there on first use. A model not in the table
    costs 0 and is reported as unpriced; local servers simply are not listed.
    """

    def __init__(self, table: dict[str, dict[str, float]] | None = None) -> None:
        self.table = dict(DEFAULT_PRICES if table is None else table)

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Prices:
        p = Path(path)
        if p.is_file():
            try:
                return cls(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                log.warning("saiten: price table %s unreadable (%s); using defaults", p, e)
                return cls()
        try:  # a starting point to edit; a folder that cannot take it costs nothing
            p.parent.mkdir(parents=True, exist_ok=True)
            write_text(p, json.dumps(DEFAULT_PRICES, indent=2) + "\n")
        except OSError as e:
            log.warning("saiten: price table %s not written (%s); using defaults", p, e)
        return cls()

    def rate(self, model: str) -> dict[str, float] | None:
        if model in self.table:
            return self.table[model]
        base = re.sub(r"-(latest|\d{4}(-\d\d-\d\d)?)$", "", model)
        return self.table.get(base)

    def usd(self, model: str, usage: dict[str, Any]) -> float | None:
        """Cost of one call from its `usage`, or None when the model has no price."""
        rate = self.rate(model)
        if rate is None:
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached_rate = rate.get("cached_input", rate.get("input", 0.0))
        return ((prompt - cached) * rate.get("input", 0.0) + cached * cached_rate
                + completion * rate.get("output", 0.0)) / 1e6

    def most(self, params: dict[str, Any]) -> float:
        """The most a request could cost, from its own size: a token is at least one byte
        of prompt text (an image part counts `IMAGE_TOKENS`), the answer at most its
        `max_tokens` (`DEFAULT_OUTPUT_TOKENS` when the request sets none), times `n`."""
        rate = self.rate(str(params.get("model", "")))
        if rate is None:
            return 0.0
        prompt = 0
        for m in params.get("messages") or []:
            parts = m.get("content")
            parts = parts if isinstance(parts, list) else [parts]
            for part in parts:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    prompt += IMAGE_TOKENS
                else:
                    text = part.get("text", "") if isinstance(part, dict) else part
                    prompt += len(str(text or "").encode("utf-8")) + 8
        out = params.get("max_tokens") or params.get("max_completion_tokens") \
            or DEFAULT_OUTPUT_TOKENS
        n = int(params.get("n") or 1)
        return n * (prompt * rate.get("input", 0.0) + int(out) * rate.get("output", 0.0)) / 1e6


IMAGE_TOKENS = 2000
DEFAULT_OUTPUT_TOKENS = 4096


class CostLog:
    """Appends one JSONL record per call (and per cache hit) and keeps the run's totals."""

    def __init__(self, path: str | os.PathLike[str] | None, secrets: Iterable[str | None] = ()):
        self.path = Path(path) if path else None
        self.secrets = [s for s in secrets if s]
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.problem = ""

    def add(self, **record: Any) -> dict[str, Any]:
        """Record one call. A log file that cannot be written (a full disk, a read-only
        folder) never fails the call: the log stops writing and `problem` says why."""
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        line = mask(json.dumps(rec, ensure_ascii=False), self.secrets)  # stays JSON
        with self._lock:
            self.records.append(json.loads(line))
            if self.path:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with self.path.open("a", encoding="utf-8") as f:
                        f.write(line + "\n")
                except OSError as e:
                    self.problem = f"cost log off: {as_write_error(e, self.path)}"
                    log.warning("saiten: %s", self.problem)
                    self.path = None
        return rec

    @property
    def usd(self) -> float:
        return sum(r.get("usd") or 0.0 for r in self.records)

    @property
    def calls(self) -> int:
        return sum(1 for r in self.records if not r.get("cache_hit"))

    @property
    def cache_hits(self) -> int:
        return sum(1 for r in self.records if r.get("cache_hit"))

    def summary(self) -> str:
        line = f"{self.calls} calls, {self.cache_hits} cache hits, ${self.usd:.4f}"
        return f"{line} ({self.problem})" if self.problem else line
