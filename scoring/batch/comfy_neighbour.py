"""A ComfyUI beside the CLI: is it generating, wait until it is not, ask it to free memory.

Only `GET /queue` and `POST /free` are used (stdlib HTTP). A ComfyUI that does not answer, or
answers something odd, counts as idle: the CLI never crashes or hangs on its neighbour.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8188"
MAX_PENDING = 2
"""More prompts than this waiting in ComfyUI's queue counts as busy even between prompts."""


@dataclass(frozen=True)
class QueueState:
    """What `/queue` said: prompts running and pending; `answered` is False when ComfyUI
    did not answer (or answered something that is not a queue), which counts as idle."""

    running: int = 0
    pending: int = 0
    answered: bool = True

    @property
    def busy(self) -> bool:
        return self.running > 0 or self.pending > MAX_PENDING

    def describe(self) -> str:
        if not self.answered:
            return "not answering"
        return f"{self.running} running, {self.pending} pending"


class ComfyNeighbour:
    """The ComfyUI at `url`, polled with short timeouts.

    `sleep` and `clock` are injectable so the wait loop is testable without waiting."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 3.0, poll: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/")
        self.timeout, self.poll = timeout, poll
        self._sleep, self._clock = sleep, clock
        self.frees = 0

    def _request(self, method: str, path: str, body: Any = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            return r.read(1 << 22)

    def queue(self) -> QueueState:
        """The queue now; never raises."""
        try:
            d = json.loads(self._request("GET", "/queue"))
            running, pending = d["queue_running"], d["queue_pending"]
            if not (isinstance(running, list) and isinstance(pending, list)):
                raise TypeError("queue_running / queue_pending are not lists")
            return QueueState(len(running), len(pending))
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
            return QueueState(answered=False)

    def answers(self) -> bool:
        return self.queue().answered

    def wait_idle(self, max_wait: float,
                  show: Callable[[str], None] = lambda _: None) -> tuple[bool, float]:
        """Poll until ComfyUI is idle or `max_wait` seconds passed; `show(line)` gets a
        progress line at every poll while waiting. Returns (idle, seconds waited)."""
        start = self._clock()
        while True:
            state = self.queue()
            waited = self._clock() - start
            if not state.busy:
                return True, waited
            if waited >= max_wait:
                return False, waited
            show(f"waiting for ComfyUI at {self.url} ({state.describe()}): "
                 f"{waited:.0f}s of at most {max_wait:.0f}s")
            self._sleep(min(self.poll, max(max_wait - waited, 0.05)))

    def free(self) -> bool:
        """`POST /free` {"unload_models": true, "free_memory": true}: ComfyUI unloads its
        models (between prompts). True when it accepted; never raises."""
        try:
            self._request("POST", "/free", {"unload_models": True, "free_memory": True})
        except (OSError, ValueError, urllib.error.URLError):
            return False
        self.frees += 1
        return True


def neighbour(arg: str | None, **kw: Any) -> ComfyNeighbour | None:
    """`--comfy` → the neighbour to respect: "off" → None; None (not given) → the default
    URL when a ComfyUI answers there, else None; a URL → that ComfyUI (answering or not)."""
    if arg is not None and arg.strip().lower() in ("off", "none", "no", ""):
        return None
    if arg is None:
        n = ComfyNeighbour(DEFAULT_URL, **kw)
        return n if n.answers() else None
    url = arg.strip()
    if "://" not in url:
        url = "http://" + url
    return ComfyNeighbour(url, **kw)
