"""A circuit breaker per server, shared by every call in the process (all runs, all prompts).

After `THRESHOLD` failed attempts in a row (no answer, connection refused, 5xx), calls to
that server fail at once ("judge unreachable since 02:14, retrying at 02:19") for a
cool-down; then one probe attempt goes through: an answer closes the breaker, a failure
opens it again for twice as long (at most 30 min). An overnight run against a dead judge
thus pays its timeouts once, not once per image and prompt. The cool-down starts at
`$SAITEN_HTTP_COOLDOWN` seconds (default 300).

Time is a monotonic `clock` (a changed system clock neither ends nor stretches a
cool-down); messages show it as wall-clock times. Tests drive the clock:
`install(Breaker(origin, clock=fake))`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

THRESHOLD = 3
MAX_COOLDOWN = 1800.0
DEFAULT_COOLDOWN = 300.0


def base_cooldown() -> float:
    """The first cool-down in seconds: `$SAITEN_HTTP_COOLDOWN` (at least 0.1), else 300."""
    try:
        return max(0.1, float(os.environ.get("SAITEN_HTTP_COOLDOWN", DEFAULT_COOLDOWN)))
    except ValueError:
        return DEFAULT_COOLDOWN


class CircuitOpen(Exception):
    """The server failed too often lately; no request was sent."""


class Breaker:
    """The state of one server (origin). Thread-safe. Times (`since`, `retry_at`, `probe`)
    are readings of `clock`, monotonic seconds by default."""

    def __init__(self, origin: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self.clock = clock
        self.failures = 0
        self.since: float | None = None  # the first failure of the streak
        self.retry_at: float | None = None  # when the next probe may go; None: closed
        self.cooldown = 0.0
        self.last = ""
        self.probe: float | None = None  # when the probe in flight went out
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self.retry_at is None else f"open for {self.cooldown:g} s"
        return f"Breaker({self.origin!r}, {state}, {self.failures} failures)"

    def _wall(self, t: float, now: float) -> str:
        """Clock reading `t` as a wall-clock time (seconds shown for short cool-downs)."""
        fmt = "%H:%M" if self.cooldown >= 60 else "%H:%M:%S"
        return time.strftime(fmt, time.localtime(time.time() + (t - now)))

    def before(self, name: str) -> None:
        """Raise CircuitOpen unless an attempt may go now (closed, or the one probe)."""
        with self._lock:
            if self.retry_at is None:
                return
            now = self.clock()
            stuck = self.probe is not None and now - self.probe > self.cooldown  # cancelled
            if now >= self.retry_at and (self.probe is None or stuck):
                self.probe = now
                return
            since = self._wall(now if self.since is None else self.since, now)
            when = self._wall(max(self.retry_at, now), now)
            raise CircuitOpen(
                f"{name} unreachable since {since}, retrying at {when} ({self.failures} "
                f"failed attempts in a row at {self.origin}; last: {self.last})")

    def success(self) -> None:
        with self._lock:
            self.failures, self.since, self.retry_at = 0, None, None
            self.cooldown, self.probe, self.last = 0.0, None, ""

    def failure(self, why: str) -> None:
        with self._lock:
            now = self.clock()
            self.failures += 1
            self.since = now if self.since is None else self.since
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


def install(b: Breaker) -> Breaker:
    """Make `b` the process-wide breaker of its origin, replacing what was known of that
    server (a test's breaker on a clock it drives)."""
    with _LOCK:
        _BREAKERS[b.origin] = b
        return b


def reset() -> None:
    """Forget every server's state (a fresh process, as far as breakers go)."""
    with _LOCK:
        _BREAKERS.clear()


__all__ = ["THRESHOLD", "Breaker", "CircuitOpen", "breaker", "install", "reset"]
