"""A circuit breaker per server, shared by every call in the process (all runs, all prompts).

After `THRESHOLD` failed attempts in a row (no answer, connection refused, 5xx), calls to
that server fail at once ("judge unreachable since 02:14, retrying at 02:19") for a
cool-down; then one probe attempt goes through: an answer closes the breaker, a failure
opens it again for twice as long (at most 30 min). An overnight run against a dead judge
thus pays its timeouts once, not once per image and prompt. The cool-down starts at
`$SAITEN_HTTP_COOLDOWN` seconds (default 300).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

THRESHOLD = 3
MAX_COOLDOWN = 1800.0


def base_cooldown() -> float:
    try:
        return max(0.1, float(os.environ.get("SAITEN_HTTP_COOLDOWN", "300")))
    except ValueError:
        return 300.0


class CircuitOpen(Exception):
    """The server failed too often lately; no request was sent."""


def _clock(t: float, cooldown: float) -> str:
    return time.strftime("%H:%M" if cooldown >= 60 else "%H:%M:%S", time.localtime(t))


@dataclass
class Breaker:
    """The state of one server (origin). Thread-safe."""

    origin: str
    failures: int = 0
    since: float | None = None  # wall time of the first failure of the streak
    retry_at: float | None = None  # wall time the next probe may go; None: closed
    cooldown: float = 0.0
    last: str = ""
    probe: float | None = None  # wall time the probe in flight went out
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before(self, name: str) -> None:
        """Raise CircuitOpen unless an attempt may go now (closed, or the one probe)."""
        with self._lock:
            if self.retry_at is None:
                return
            now = time.time()
            stuck = self.probe is not None and now - self.probe > self.cooldown  # cancelled
            if now >= self.retry_at and (self.probe is None or stuck):
                self.probe = now
                return
            since = _clock(self.since or now, self.cooldown)
            when = _clock(max(self.retry_at, now), self.cooldown)
            raise CircuitOpen(
                f"{name} unreachable since {since}, retrying at {when} ({self.failures} "
                f"failed attempts in a row at {self.origin}; last: {self.last})")

    def success(self) -> None:
        with self._lock:
            self.failures, self.since, self.retry_at = 0, None, None
            self.cooldown, self.probe, self.last = 0.0, None, ""

    def failure(self, why: str) -> None:
        with self._lock:
            now = time.time()
            self.failures += 1
            self.since = self.since or now
            self.last = why
            if self.probe is not None or self.failures >= THRESHOLD:
                probed = self.probe is not None and self.cooldown > 0
                self.cooldown = min(MAX_COOLDOWN, self.cooldown * 2) if probed \
                    else base_cooldown()
                self.retry_at = now + self.cooldown
                self.probe = None


_BREAKERS: dict[str, Breaker] = {}
_LOCK = threading.Lock()


def breaker(origin: str) -> Breaker:
    """The process-wide breaker of `origin` (scheme://host:port)."""
    with _LOCK:
        b = _BREAKERS.get(origin)
        if b is None:
            b = _BREAKERS[origin] = Breaker(origin)
        return b


def reset() -> None:
    """Forget every server's state (a fresh process, as far as breakers go)."""
    with _LOCK:
        _BREAKERS.clear()


__all__ = ["THRESHOLD", "Breaker", "CircuitOpen", "breaker", "reset"]
