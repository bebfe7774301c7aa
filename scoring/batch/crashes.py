"""Remembering the files a run was reading when it died, so the next run does not die on
them again (a `watch` killed by the out-of-memory killer and restarted by the user or a
service manager).

`Crashes(folder)` keeps `.saiten-inflight.json` in the report folder, written atomically:
per running process, the files of the batch in hand (name, size, mtime). A record whose
process is gone belongs to a run that died there. Its files become *suspects*: the next run
scores each of them alone, and a suspect that was in hand alone when a run died is
*crashed*: skipped, with the reason, until the file changes. Several runs may share the
folder: each writes only its own record, under the folder's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..core.atomic import folder_lock, write_text

FILE_NAME = ".saiten-inflight.json"

Signature = tuple[int, int]


def signature(path: Path) -> Signature | None:
    """(size, mtime_ns) of a file, or None when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def pid_alive(pid: int) -> bool:
    """Whether process `pid` is running on this machine."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE
        if not handle:
            return False
        try:
            return ctypes.windll.kernel32.WaitForSingleObject(handle, 0) == 0x102  # TIMEOUT
        finally:
            ctypes.windll.kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Crashes:
    """The in-flight record of one report folder (see the module doc)."""

    def __init__(self, folder: str | Path, pid: int | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self.pid = os.getpid() if pid is None else pid
        self.suspects: dict[str, Signature] = {}
        self.crashed: dict[str, Signature] = {}
        self._adopt()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1))

    def _adopt(self) -> None:
        """Turn the records of dead runs into suspects (several files in hand) or crashed
        files (one file in hand)."""
        if not self.path.exists():
            return
        with folder_lock(self.folder):
            data = self._read()
            runs = data.get("runs") if isinstance(data.get("runs"), dict) else {}
            crashed = data.get("crashed") if isinstance(data.get("crashed"), dict) else {}
            suspects = data.get("suspects") if isinstance(data.get("suspects"), dict) else {}
            for pid, run in list(runs.items()):
                if str(pid) != str(self.pid) and pid_alive(int(pid)):
                    continue
                files = {n: tuple(s) for n, s in (run.get("files") or {}).items()}
                for name, sig in files.items():
                    (crashed if len(files) == 1 else suspects)[name] = list(sig)
                del runs[pid]
            self._write({"runs": runs, "suspects": suspects, "crashed": crashed})
        self.suspects = {n: tuple(s) for n, s in suspects.items()}  # type: ignore[misc]
        self.crashed = {n: tuple(s) for n, s in crashed.items()}  # type: ignore[misc]

    def why_skipped(self, path: Path) -> str | None:
        """The reason to skip `path` (a run died with it alone in hand and it has not
        changed since), else None."""
        sig = self.crashed.get(path.name)
        if sig is None or signature(path) != sig:
            return None
        return (f"{path.name}: skipped: a run died while scoring this file (out of memory?); "
                "it is skipped until the file changes")

    def alone(self, paths: Sequence[Path]) -> list[list[Path]]:
        """`paths` as batches: each suspect on its own (so a crash names it), the rest
        together."""
        lone = [p for p in paths if self.suspects.get(p.name) == signature(p)]
        rest = [p for p in paths if p not in lone]
        return [[p] for p in lone] + ([rest] if rest else [])

    @contextlib.contextmanager
    def holding(self, paths: Iterable[Path]):
        """Record `paths` as in hand while the block runs (cleared when it ends, even by an
        exception: only a killed process leaves the record behind)."""
        files = {p.name: sig for p in paths if (sig := signature(p)) is not None}
        self._update(files)
        try:
            yield
        finally:
            self._update(None, done=files)

    def _update(self, files: dict[str, Signature] | None,
                done: dict[str, Signature] | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.folder):
            data = self._read()
            runs = data.get("runs") if isinstance(data.get("runs"), dict) else {}
            if files:
                runs[str(self.pid)] = {"files": files, "since": time.time()}
            else:
                runs.pop(str(self.pid), None)
            suspects = data.get("suspects") if isinstance(data.get("suspects"), dict) else {}
            for name in done or {}:
                suspects.pop(name, None)
                self.suspects.pop(name, None)
            self._write({**data, "runs": runs, "suspects": suspects})


__all__ = ["FILE_NAME", "Crashes", "pid_alive", "signature"]
