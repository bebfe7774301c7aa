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


Log = Callable[[str], None]


class Beside:
    """A CLI run's manners towards the ComfyUI beside it (None: there is none): before our
    models load, wait while it generates and ask it to free its memory (once, until it is
    busy again); when it gets busy between batches, unload ours. `log` gets what happened,
    `show` the waiting line; `waited` and `frees` count it for the closing line."""

    def __init__(self, neighbour: ComfyNeighbour | None, *, max_wait: float = 15 * 60,
                 log: Log = lambda _: None, show: Log = lambda _: None) -> None:
        self.neighbour, self.max_wait = neighbour, max_wait
        self._log, self._show = log, show
        self.waited, self.frees = 0.0, 0
        self._ready = False  # ComfyUI was asked to free memory and our models may be loaded

    def between_batches(self, unload: Callable[[], None]) -> None:
        """ComfyUI busy again while our models are loaded: give it our memory (`unload`);
        the next load waits until it is idle and asks it to free its own."""
        if self.neighbour is None or not self._ready or not self.neighbour.queue().busy:
            return
        self._log(f"ComfyUI at {self.neighbour.url} is generating: unloading our models")
        unload()
        self._ready = False

    def make_room(self) -> None:
        """Before a model loads: wait while ComfyUI is busy, then ask it to free memory.
        The CLI's memory policy calls it before a GPU load, the runner before a source runs."""
        if self.neighbour is None or self._ready:
            return
        idle, waited = self.neighbour.wait_idle(self.max_wait, self._show)
        self.waited += waited
        if not idle:
            self._log(f"ComfyUI at {self.neighbour.url} still busy after {waited:.0f}s "
                      "(--comfy-wait): scoring anyway")
        if self.neighbour.free():
            self.frees += 1
            self._log(f"asked ComfyUI at {self.neighbour.url} to free its memory (/free)")
        self._ready = True

    def free_again(self) -> bool:
        """After an out-of-memory error: ask ComfyUI to free once more."""
        if self.neighbour is None or not self.neighbour.free():
            return False
        self.frees += 1
        return True
