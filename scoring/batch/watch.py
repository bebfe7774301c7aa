"""Watching a folder for finished images, and stopping gracefully on Ctrl-C.

A file is *complete* once its size and modification time have stayed the same for `settle`
seconds (a writer still appending changes them) — a file renamed into place is complete at
the first look that finds it unchanged. Names that writers use while writing (`.tmp`,
`.part`, dot-files) are never picked up. Polling (no inotify) works on every OS and on
network shares.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from ..core.images import IMAGE_SUFFIXES

Signature = tuple[int, int]  # (size, mtime_ns)


class Stop:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the run to stop after the image in hand;
    a second Ctrl-C interrupts at once. Use as a context manager around the run."""

    def __init__(self, log: Callable[[str], None] = lambda _: None) -> None:
        self.requested = False
        self._log = log
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self._log("stopping after the images in hand (Ctrl-C again to stop now)")

    def __enter__(self) -> Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: default behaviour
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def _writing(name: str) -> bool:
    low = name.lower()
    return low.startswith(".") or low.endswith((".tmp", ".part", ".partial", ".crdownload"))


class FolderWatch:
    """Finished image files in `folder` that are new or changed since they were last
    yielded. `clock`/`sleep` are injectable for tests."""

    def __init__(self, folder: str | Path, *, settle: float = 1.0, poll: float = 0.5,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.folder = Path(folder)
        self.settle, self.poll = settle, poll
        self._clock, self._sleep = clock, sleep
        self._seen: dict[str, tuple[Signature, float]] = {}  # name → (signature, since)
        self._done: dict[str, Signature] = {}

    def _scan(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    if _writing(e.name) or Path(e.name).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    try:
                        st = e.stat()
                    except OSError:
                        continue  # removed between listing and stat
                    if e.is_file() and st.st_size > 0:
                        found[e.name] = (st.st_size, st.st_mtime_ns)
        except OSError:
            pass  # the folder vanished for a moment (a network share): look again later
        return found

    def ready(self) -> list[Path]:
        """One look: files whose signature has held for `settle` seconds and that were not
        yielded with that signature before, sorted by name; marks them done."""
        now = self._clock()
        out = []
        current = self._scan()
        for name in list(self._seen):
            if name not in current:
                del self._seen[name]
        for name, sig in sorted(current.items()):
            if self._done.get(name) == sig:
                continue
            prev = self._seen.get(name)
            if prev is None or prev[0] != sig:
                self._seen[name] = (sig, now)
                if self.settle > 0:
                    continue
                prev = self._seen[name]
            if now - prev[1] >= self.settle:
                self._done[name] = sig
                out.append(self.folder / name)
        return out

    def mark_done(self, paths: list[Path]) -> None:
        """Treat these files (e.g. already scored at start) as seen in their current form."""
        current = self._scan()
        for p in paths:
            if p.name in current:
                self._done[p.name] = current[p.name]

    def batches(self, size: int, *, idle_exit: float | None = None,
                stop: Callable[[], bool] = lambda: False,
                idle: Callable[[], None] = lambda: None) -> Iterator[list[Path]]:
        """Lists of up to `size` finished files, as they come; ends when `stop()` is true or
        no new file arrived for `idle_exit` seconds. `idle()` is called at every empty look
        (to flush a report)."""
        last = self._clock()
        pending: list[Path] = []
        while not stop():
            pending += [p for p in self.ready() if p not in pending]
            if pending:
                batch, pending = pending[:size], pending[size:]
                yield batch
                last = self._clock()
                continue
            idle()
            if idle_exit is not None and self._clock() - last >= idle_exit:
                return
            self._sleep(self.poll)
