"""Every file Saiten writes, written whole or not at all, in a folder others may share.

- `replacing(path)`: a file opened on a unique temporary name in `path`'s folder (a dot
  name ending in `.tmp`, which folder watchers skip); when the block ends it is flushed,
  fsynced and moved onto `path` with `os.replace`, so a reader sees the old file or the
  new one, never half of one. On any error (Ctrl-C included) the temporary file is removed
  and `path` is left as it was. `write_bytes` / `write_text` wrap it.
- `Staged`: several files written to temporary names first, replaced together only once all
  of them are written (a report's JSONL, CSV and page stay one set).
- `folder_lock(folder)`: an exclusive lock between processes writing one folder (two runs
  with the same `--out` take turns instead of crossing).
- `WriteError`: what a full disk, a read-only folder or a refused permission becomes — an
  OSError whose message is one line naming the folder and the space left on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                         errno.EFBIG})
"""OSError numbers that mean "this folder cannot take the file" (not a bug of ours)."""


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def free_space(folder: str | Path) -> str:
    """"12.0 KB free of 200.0 KB" for the file system holding `folder` (or its nearest
    existing parent), or "free space unknown"."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        u = shutil.disk_usage(p)
    except OSError:
        return "free space unknown"
    return f"{_size(u.free)} free of {_size(u.total)}"


class WriteError(OSError):
    """A file could not be written for a reason of the disk or the folder (full, read-only,
    no permission). `str()` is one line: what, where, why, and the free space there."""

    def __init__(self, path: str | Path, cause: BaseException) -> None:
        path = Path(path)
        code = getattr(cause, "errno", None)
        why = (os.strerror(code) if isinstance(code, int) else str(cause)).rstrip(".")
        folder = path.parent.absolute()
        if isinstance(cause, sqlite3.Error):
            why = _why_folder(folder) or str(cause)
        super().__init__(code or errno.EIO, f"cannot write {path.name} in {folder}: "
                         f"{why.lower()} ({free_space(folder)})")
        self.path, self.folder = path, folder

    def __str__(self) -> str:
        return str(self.strerror)


def _why_folder(folder: Path) -> str:
    """"read-only file system" / "permission denied" when `folder` (or the nearest existing
    folder above it) cannot be written, else "" — what sqlite's own messages do not say."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        if hasattr(os, "statvfs") and os.statvfs(p).f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
    except OSError:
        return ""
    return "" if os.access(p, os.W_OK) else os.strerror(errno.EACCES)


def is_disk_error(e: BaseException) -> bool:
    """True for an error that says the folder cannot take a file (full, read-only,
    refused), as an OSError or as sqlite reports it."""
    if isinstance(e, WriteError):
        return True
    if isinstance(e, OSError):
        return e.errno in DISK_ERRNOS
    if isinstance(e, sqlite3.OperationalError):
        msg = str(e).lower()
        return any(s in msg for s in ("disk is full", "readonly database", "disk i/o error",
                                      "unable to open database file"))
    return False


def as_write_error(e: BaseException, path: str | Path) -> BaseException:
    """`e` as a WriteError about `path` when it is a disk or folder problem, else `e`."""
    return e if isinstance(e, WriteError) or not is_disk_error(e) else WriteError(path, e)


def temp_name(path: Path) -> Path:
    """A temporary name beside `path` no other writer (thread or process) can pick."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        p.unlink()


def _replace(src: Path, dst: Path) -> None:
    """os.replace; on Windows a reader holding `dst` open makes it fail for a moment."""
    for attempt in range(20):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 19:
                raise
            time.sleep(0.05)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replacing(path: str | Path, mode: str = "wb", **open_kw: Any) -> Iterator[IO[Any]]:
    """A file to write `path` through (see the module doc); raises WriteError for a full
    disk or an unwritable folder, with nothing left behind."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException as e:
        _remove(tmp)
        err = as_write_error(e, path)
        if err is e:
            raise
        raise err from e
    _sync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with replacing(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8",
               newline: str | None = None) -> Path:
    with replacing(path, "w", encoding=encoding, newline=newline) as f:
        f.write(text)
    return Path(path)


class Staged:
    """Files written to temporary names and moved into place together by `commit()`; any
    error (or leaving the `with` block without committing) removes every temporary file and
    leaves the old files as they were.

        with Staged() as s:
            s.write(out / "a.jsonl", lambda f: ...)   # f: a text file on a temp name
            s.write(out / "b.csv", ...)
            s.commit()
    """

    def __init__(self) -> None:
        self._temps: list[tuple[Path, Path]] = []

    def __enter__(self) -> Staged:
        return self

    def write(self, path: str | Path, fill: Callable[[IO[Any]], None], mode: str = "w",
              **open_kw: Any) -> Path:
        """Write `path`'s new content (by `fill(file)`) to a temporary name; returns `path`."""
        path = Path(path)
        tmp = temp_name(path)
        self._temps.append((tmp, path))
        if "b" not in mode:
            open_kw.setdefault("encoding", "utf-8")
        try:
            with open(tmp, mode, **open_kw) as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as e:
            err = as_write_error(e, path)
            if err is e:
                raise
            raise err from e
        return path

    def commit(self) -> list[Path]:
        """Move every staged file into place (renames need no space on a full disk)."""
        done = []
        for tmp, path in self._temps:
            try:
                _replace(tmp, path)
            except OSError as e:
                raise as_write_error(e, path) from e
            done.append(path)
        self._temps = [t for t in self._temps if t[1] not in done]
        for folder in {p.parent for p in done}:
            _sync_folder(folder)
        return done

    def __exit__(self, *exc: object) -> None:
        for tmp, _ in self._temps:
            _remove(tmp)
        self._temps = []


LOCK_NAME = ".saiten.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.saiten.lock` file in it) between processes;
    waits up to `timeout` seconds, then raises TimeoutError naming the folder."""
    folder = Path(folder)
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise as_write_error(e, folder / LOCK_NAME) from e
    deadline = time.monotonic() + timeout
    try:
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise TimeoutError(f"another Saiten run held {folder} for {timeout:.0f} s")
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


__all__ = ["DISK_ERRNOS", "LOCK_NAME", "Staged", "WriteError", "as_write_error",
           "folder_lock", "free_space", "is_disk_error", "replacing", "temp_name",
           "write_bytes", "write_text"]
