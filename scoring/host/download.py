"""Model files on request — the one download path every family uses.

`fetch(wanted, dest, allow=…)` makes sure the folder `dest` holds every `Wanted` file:

- a file already there is never fetched again; nothing is fetched unless `allow` (the user
  switched downloads on) and, for the Hub, not HF_HUB_OFFLINE — else a SourceError says which
  files to put where, and from where;
- a Hub file found in the user's Hub cache is copied (hard-linked) from there, checked;
- otherwise every missing file is located first (the Hub's size and checksum; a file published
  elsewhere has its size and sha256 pinned in the catalogue), the total is announced (`say`)
  and the free disk checked before the first byte;
- each file then goes through `transfer.fetch`: resumable, checked, atomic, with byte progress
  (`progress(name, done, total)`) and cancellation (`interrupted()` → Cancelled, the partial
  file kept so the next try resumes).

A gated repository (CL Tagger v2) says exactly what to do: accept its terms on its page, and
where the token goes (the user's Hub login or HF_TOKEN, never a widget).
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SourceError
from . import hub, transfer
from .hub import offline
from .transfer import Progress, human

log = logging.getLogger("saiten")

RESERVE = 64 << 20
"""Free space kept beyond the files themselves (the disk is shared with everything else)."""


@dataclass(frozen=True)
class Wanted:
    """One file a model needs: `name` inside the destination folder, fetched from `remote` in
    the Hub repository `repo`, or from `url` (a file published elsewhere: `sha256` and `size`
    pinned). `size`/`sha256` given for a Hub file are checked too."""

    name: str
    repo: str = ""
    remote: str = ""
    url: str = ""
    size: int | None = None
    sha256: str = ""
    sha1: str = ""

    def __post_init__(self) -> None:
        if bool(self.repo) == bool(self.url):
            raise ValueError(f"{self.name}: give a Hub repo or a URL, not both or neither")
        if self.url and not (self.sha256 and self.size):
            raise ValueError(f"{self.name}: a file from {self.url} needs a pinned sha256 and "
                             "size")
        if Path(self.name).is_absolute() or ".." in Path(self.name).parts:
            raise ValueError(f"{self.name}: a file name inside the destination folder")

    @property
    def source(self) -> str:
        """Where a user finds it: the URL, or the repository's page (at its folder)."""
        return self.url or hub.page(self.repo, posixpath.dirname(self.remote or self.name))


def missing(wanted: Sequence[Wanted], dest: str | Path) -> list[Wanted]:
    """The files of `wanted` not yet in `dest`."""
    return [w for w in wanted if not (Path(dest) / w.name).is_file()]


def _refuse(absent: list[Wanted], dest: Path, allow: bool) -> SourceError:
    why = "offline (HF_HUB_OFFLINE)" if allow else "downloads are off"
    names = " and ".join(w.name for w in absent)
    sources = ", ".join(dict.fromkeys(w.source for w in absent))
    switch = "" if allow else ", or switch allow_download on"
    return SourceError(f"{names} missing and {why}: put {names} in {dest} (from {sources})"
                       f"{switch}")


def _locate(w: Wanted, revision: str | None) -> hub.Located:
    if w.url:
        return hub.Located(w.url, w.size, sha256=w.sha256.lower())
    found = hub.locate(w.repo, w.remote or w.name, revision)
    size = w.size if w.size is not None else found.size
    if w.size is not None and found.size is not None and w.size != found.size:
        raise SourceError(f"{w.name}: the Hub has {found.size} bytes, {w.size} were expected "
                          "(the catalogue's or the repository listing's): the repository "
                          "changed; nothing was fetched")
    sha = w.sha256.lower() or found.sha256
    return hub.Located(found.url, size, sha256=sha, sha1="" if sha else w.sha1.lower(),
                       headers=found.headers)


def check_space(dest: Path, needed: int) -> None:
    """SourceError when `dest`'s disk has less than `needed` bytes (plus a reserve) free."""
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + RESERVE > free:
        raise SourceError(f"not enough free disk space in {dest}: the download needs "
                          f"{human(needed)} (+{human(RESERVE)} spare), {human(free)} is free. "
                          "Free some space, or download the files elsewhere and put them there "
                          "yourself; nothing was written")


def fetch(wanted: Sequence[Wanted], dest: str | Path, *, allow: bool,
          progress: Progress | None = None, interrupted: Callable[[], bool] | None = None,
          say: Callable[[str], None] | None = None, revision: str | None = None) -> Path:
    """Make sure `dest` holds every file of `wanted` (see the module docstring)."""
    dest = Path(dest)
    absent = missing(wanted, dest)
    if not absent:
        return dest
    if not allow or (offline() and any(w.repo for w in absent)):
        cached = [w for w in absent if w.repo and hub.cached(w.repo, w.remote or w.name,
                                                             revision)]
        if allow and len(cached) == len(absent):  # offline, but all in the user's Hub cache
            for w in cached:
                _from_cache(w, dest, revision, located=None)
            return dest
        raise _refuse(absent, dest, allow)
    say = say or log.info
    todo: list[tuple[Wanted, hub.Located]] = []
    for w in absent:
        if w.repo and hub.cached(w.repo, w.remote or w.name, revision):
            _from_cache(w, dest, revision, located=_locate(w, revision))
            continue
        todo.append((w, _locate(w, revision)))
    if not todo:
        return dest
    needed = 0
    for w, loc in todo:
        part = transfer.part_path(dest / w.name, loc.sha256 or loc.sha1 or loc.url)
        have = part.stat().st_size if part.exists() else 0
        needed += max(0, (loc.size or 0) - have)
    total = sum(loc.size or 0 for _, loc in todo)
    unknown = any(loc.size is None for _, loc in todo)
    say(f"saiten: downloading {len(todo)} file{'s' * (len(todo) != 1)} "
        f"({human(total)}{' + files of unknown size' if unknown else ''}) into {dest}: "
        + ", ".join(f"{w.name} {human(loc.size)}" for w, loc in todo))
    check_space(dest, needed)
    for w, loc in todo:
        transfer.fetch(loc.url, dest / w.name, size=loc.size, sha256=loc.sha256, sha1=loc.sha1,
                       headers=loc.headers, name=w.name, progress=progress,
                       interrupted=interrupted)
    return dest


def _from_cache(w: Wanted, dest: Path, revision: str | None,
                located: hub.Located | None) -> None:
    src = hub.cached(w.repo, w.remote or w.name, revision)
    assert src is not None
    size = located.size if located else w.size
    sha256 = (located.sha256 if located else "") or w.sha256.lower()
    sha1 = "" if sha256 else w.sha1.lower()
    transfer.copy_verified(src, dest / w.name, size=size, sha256=sha256, sha1=sha1)


def hub_files(repo: str, files: Sequence[str], subfolder: str = "") -> list[Wanted]:
    """`Wanted` for files of a Hub repository (from its `subfolder`), kept under their own
    names."""
    return [Wanted(f, repo=repo, remote=f"{subfolder}/{f}" if subfolder else f) for f in files]


def repo_files(repo: str, patterns: Sequence[str], revision: str | None = None,
               subfolder: str = "") -> list[Wanted]:
    """`Wanted` for every file of a Hub repository (under `subfolder`) matching `patterns`,
    with the sizes and checksums of its listing: a whole model folder."""
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    return [Wanted(e.path[len(prefix):], repo=repo, remote=e.path, size=e.size, sha256=e.sha256,
                   sha1=e.sha1)
            for e in hub.list_files(repo, [prefix + p for p in patterns], revision)
            if e.path.startswith(prefix)]


__all__ = ["Progress", "Wanted", "check_space", "fetch", "hub_files", "missing",
           "offline", "repo_files"]
