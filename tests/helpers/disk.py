"""A real small file system for full-disk and read-only tests: a tmpfs mounted by root.

`tmpfs(folder, size)` mounts one at `folder` (created), yields it, unmounts it. Not root:
the test skips, and under CI=true (tests/conftest.py) that skip is a failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs (a real full disk) needs root"
    return None


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "200k") -> Iterator[Path]:
    """A tmpfs of `size` at `folder`; `remount(folder, ro=True)` makes it read-only."""
    why = can_mount()
    if why:
        pytest.skip(why)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs",
                    str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, *, ro: bool) -> None:
    subprocess.run(["mount", "-o", f"remount,{'ro' if ro else 'rw'}", str(folder)], check=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system at `folder` up to `leave` bytes free (a file named .filler)."""
    path = folder / ".filler"
    with path.open("wb") as f:
        try:
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if free <= leave:
                    break
                f.write(b"\0" * min(65536, max(1, free - leave)))
                f.flush()
        except OSError:
            pass
    return path
