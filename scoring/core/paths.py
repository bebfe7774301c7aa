"""The one rule for a path a user (or a shared workflow) names inside a folder of ours."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


def confined(name: str, root: str | Path, *, what: str, where: str,
             file: bool = True) -> Path:
    """`name` resolved under `root`: a relative path (in POSIX or Windows shape) without
    `..` or `~`, still under `root` once symlinks are resolved; with `file`, an existing
    file. Every refusal is a ValueError naming `what` and `where` (e.g. "calibration file",
    "ComfyUI's user directory") that never says whether anything exists outside `root`:
    a path is refused by its shape or by where it leads before any look."""
    text = name.strip()
    shapes = (PurePosixPath(text), PureWindowsPath(text))
    if (not text or text.startswith("~") or any(p.is_absolute() or p.anchor or ".." in p.parts
                                                 for p in shapes)):
        raise ValueError(f"{what} {text!r}: give a path relative to {where}, without '..'")
    base = Path(root).resolve()
    full = (base / text).resolve()
    if full == base or not full.is_relative_to(base):
        raise ValueError(f"{what} {text!r} leads outside {where} (a symlink?); only paths "
                         f"inside {where} are used")
    if file and not full.is_file():
        raise ValueError(f"{what} not found: {text} in {where}")
    return full
