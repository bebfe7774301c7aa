"""One CLI run of `score` or `watch`: batches through the Runner into a report that stays
whole (one row per file name, the latest verdict wins), with progress on the terminal.

At a terminal the progress is a tqdm bar (images done, rate, ETA); elsewhere (a log file,
a pipe) it is one "scored i/n" line per batch. Ctrl-C (or SIGTERM) finishes the batch in
hand, then the report is written; a second Ctrl-C stops at once and still writes it.

A report written while the run goes on says on its page that it is partial (so one left
behind by a run that could not finish says so); the final one replaces it. The files in
hand are recorded (`crashes.Crashes`): a file a run died on is retried alone, then skipped
with the reason, so a `watch` restarted after the out-of-memory killer does not die on it
again.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from ..report import Entry, write_report
from ..sources import Cancelled
from .crashes import Crashes
from .runner import Runner, closing_line, run_counts, unreadable
from .watch import FolderWatch, Stop


class Progress:
    """A tqdm bar on a terminal, plain lines otherwise; `log` never garbles the bar."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done = total, 0
        self._logged_wait = -float("inf")
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            try:
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0  # a pty: 0
            except (OSError, ValueError):
                sized = False
            self.bar = tqdm(total=total, unit="img", file=self.stream, dynamic_ncols=sized,
                            ncols=None if sized else 100, nrows=None if sized else 24,
                            desc="scoring")

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def waiting(self, line: str) -> None:
        """The ComfyUI wait line: the bar's description, or a log line every 30 s."""
        if self.bar is not None:
            self.bar.set_description_str(line, refresh=True)
        elif time.monotonic() - self._logged_wait >= 30:
            self._logged_wait = time.monotonic()
            self.log(line)

    def update(self, n: int) -> None:
        self.done += n
        self._logged_wait = -float("inf")
        if self.bar is not None:
            self.bar.set_description_str("scoring", refresh=False)
            self.bar.update(n)
        else:
            self.log(f"scored {self.done}/{self.total}" if self.total else f"scored {self.done}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Session:
    """Entries by file name, and the report written from them (at most every `every`
    seconds while watching, and at the end); `progress` shows the run (the same one the
    runner's ComfyUI manners log to)."""

    def __init__(self, runner: Runner, out: str | Path, title: str, progress: Progress, *,
                 every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.runner, self.out, self.title, self.progress = runner, Path(out), title, progress
        self.every, self._clock = every, clock
        self.entries: dict[str, Entry] = {}
        self.crashes = Crashes(self.out)
        self._next = -float("inf")
        self._dirty = False
        self.interrupted = False

    def add(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.entries.pop(e.name, None)  # a changed file moves to the end, once
            self.entries[e.name] = e
            self._dirty = True

    def note(self) -> str:
        return closing_line(self.runner.counts, self.runner.beside, len(self.entries)) + "."

    def write(self, force: bool = False) -> dict[str, Path] | None:
        """Write the report when something changed and `every` seconds passed (or ten
        times the last write's duration, so a big report never eats the night)."""
        if not (force or (self._dirty and self._clock() >= self._next)):
            return None
        start = self._clock()
        self._dirty = False
        note = "" if force else (
            f"Partial report, written while the run was in progress ({len(self.entries)} "
            "images so far; the run's final report replaces it).")
        written = write_report(self.out, list(self.entries.values()), self.title,
                               note=note, run=run_counts(self.runner.counts,
                                                         self.runner.beside,
                                                         len(self.entries)),
                               rule=self.runner.rule)
        self._next = self._clock() + max(self.every, 10 * (self._clock() - start))
        return written

    def _batches(self, batches: Iterable[Sequence[Path]], stop: Stop) -> None:
        """Score each batch into the report until the batches end or a stop is asked;
        a second Ctrl-C (KeyboardInterrupt) counts as an interruption too."""
        try:
            for paths in batches:
                for part in self.crashes.alone(list(paths)):
                    self._batch(part)
                self.progress.update(len(paths))
                self.write()
                if stop.requested:
                    break
        except (KeyboardInterrupt, Cancelled):
            self.interrupted = True
        finally:
            self.runner.unload()
            self.progress.close()

    def _batch(self, paths: list[Path]) -> None:
        """Score `paths` into the report, skipping (with the reason) a file a run died on."""
        skip = {p: why for p in paths if (why := self.crashes.why_skipped(p))}
        self.add(Entry(p.name, unreadable(why)) for p, why in skip.items())
        todo = [p for p in paths if p not in skip]
        if todo:
            with self.crashes.holding(todo):
                self.add(self.runner.batch(todo))

    def score(self, paths: Sequence[Path], batch: int) -> None:
        """Score `paths` in batches of `batch`; a Ctrl-C before the end is an interruption."""
        with Stop(self.progress.log) as stop:
            chunks = (paths[i:i + batch] for i in range(0, len(paths), batch))
            self._batches(chunks, stop)
        self.interrupted |= stop.requested and len(self.entries) < len(paths)
        if self.interrupted:
            self.progress.log(f"interrupted: reporting the {len(self.entries)} images scored "
                              "so far")

    def watch(self, folder: Path, batch: int, *, idle_exit: float | None,
              settle: float = 2.0, poll: float = 0.5) -> None:
        """Score what is in `folder` and whatever lands there until Ctrl-C (the usual end,
        not an interruption) or `idle_exit` seconds without a new file."""
        self.progress.log(f"watching {folder} (Ctrl-C to stop; report in {self.out})")
        watcher = FolderWatch(folder, settle=settle, poll=poll)
        with Stop(self.progress.log) as stop:
            self._batches(watcher.batches(batch, idle_exit=idle_exit,
                                          stop=lambda: stop.requested,
                                          idle=self.write), stop)
        why = "stopped" if stop.requested else f"no new file for {idle_exit:g}s"
        self.progress.log(f"{why}: reporting {len(self.entries)} images")
