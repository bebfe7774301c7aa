"""One file over HTTP into its folder: resumable, checked, atomic, cancellable.

The bytes go to `.<name>.<id>.part` beside the destination (`id` from the expected checksum, so
a later try resumes the same content with a Range request and a changed file starts afresh).
Progress is reported per chunk and `interrupted()` polled between chunks (the part is kept,
the next try resumes). The finished part is checked — its size, and its sha256 or git blob
sha1 — and only then renamed onto the destination: nothing half-written ever has the final
name. A cut connection is resumed a few times within the call; a full disk removes the part
and says how much room is needed.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import Cancelled, SourceError

Progress = Callable[[str, int, int | None], None]
"""progress(file name, bytes done, total bytes or None)."""

CHUNK = 1 << 16
RETRIES = 3
TIMEOUT = 30.0
UNKNOWN_SIZE_LIMIT = 64 << 20
"""A file whose size nobody told us is read up to this many bytes (the catalogue pins the
size of everything large)."""


def human(n: int | None) -> str:
    """1536 → "1.5 KB" (decimal units, as the Hub shows sizes)."""
    if n is None:
        return "unknown size"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, dropping the Authorization header when the host changes (a token
    belongs to the host it was configured for, never to a CDN)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc.lower() != urlsplit(
                req.full_url).netloc.lower():
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def part_path(dest: Path, key: str) -> Path:
    """The resumable partial file for `dest` (hidden, never matching a model file name)."""
    ident = hashlib.sha256(key.encode()).hexdigest()[:12]
    return dest.parent / f".{dest.name}.{ident}.part"


def _hasher(sha256: str, sha1: str, size: int | None) -> hashlib._Hash | None:
    if sha256:
        return hashlib.sha256()
    if sha1 and size is not None:
        h = hashlib.sha1(usedforsecurity=False)
        h.update(b"blob %d\0" % size)  # the git blob id of a file stored without LFS
        return h
    return None


def _digest_file(path: Path, h: hashlib._Hash) -> None:
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)


def _open(url: str, headers: Sequence[tuple[str, str]], start: int):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "identity",
                                               "User-Agent": "ComfyUI-Saiten", **dict(headers)})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return _OPENER.open(req, timeout=TIMEOUT)


def fetch(url: str, dest: Path, *, size: int | None, sha256: str = "", sha1: str = "",
          headers: Sequence[tuple[str, str]] = (), name: str = "",
          progress: Progress | None = None,
          interrupted: Callable[[], bool] | None = None) -> Path:
    """Download `url` onto `dest` (see the module docstring); returns `dest`."""
    name = name or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest, sha256 or sha1 or url)
    limit = size if size is not None else UNKNOWN_SIZE_LIMIT
    if part.exists() and part.stat().st_size > limit:
        part.unlink()
    attempts = 0
    while True:
        done = part.stat().st_size if part.exists() else 0
        if size is not None and done == size:
            break
        try:
            _stream(url, part, done, limit, headers, name, size, progress, interrupted)
            break
        except Cancelled:
            raise
        except (OSError, http.client.HTTPException) as e:
            if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                part.unlink(missing_ok=True)
                raise SourceError(f"the disk is full while writing {name} into {dest.parent} "
                                  f"({human(size)} needed): free some space and try again; "
                                  "nothing was kept") from e
            if isinstance(e, urllib.error.HTTPError) and e.code not in (408, 429, 500, 502,
                                                                        503, 504):
                raise SourceError(f"cannot download {name}: HTTP {e.code} from "
                                  f"{urlsplit(url).netloc}") from e
            attempts += 1
            got = part.stat().st_size if part.exists() else 0
            if attempts > RETRIES:
                raise SourceError(
                    f"the download of {name} broke off at {human(got)} of {human(size)} "
                    f"({type(e).__name__}: {e}): run again to resume from there") from e
            time.sleep(min(0.2 * attempts, 1.0))
    _check(part, dest, size, sha256, sha1, name)
    os.replace(part, dest)
    return dest


def _stream(url: str, part: Path, done: int, limit: int, headers: Sequence[tuple[str, str]],
            name: str, size: int | None, progress: Progress | None,
            interrupted: Callable[[], bool] | None) -> None:
    with _open(url, headers, done) as resp:
        if done and resp.status != 206:  # the server ignored the Range: start again
            done = 0
        mode = "ab" if done else "wb"
        with open(part, mode) as f:
            if progress:
                progress(name, done, size)
            while True:
                if interrupted is not None and interrupted():
                    raise Cancelled(f"download of {name} cancelled (kept {human(done)}; the "
                                    "next try resumes)")
                block = resp.read(CHUNK)
                if not block:
                    break
                if done + len(block) > limit:
                    raise SourceError(f"{name}: the server sent more than the expected "
                                      f"{human(limit)}; nothing was kept")
                f.write(block)
                done += len(block)
                if progress:
                    progress(name, done, size)
            f.flush()
            os.fsync(f.fileno())
    if size is not None and done < size:
        raise ConnectionError(f"connection closed after {done} of {size} bytes")


def _check(part: Path, dest: Path, size: int | None, sha256: str, sha1: str, name: str) -> None:
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        raise SourceError(f"{name}: got {got} bytes, expected {size}; nothing was kept")
    h = _hasher(sha256, sha1, got)
    if h is None:
        return
    _digest_file(part, h)
    want = sha256 or sha1
    if h.hexdigest() != want:
        part.unlink(missing_ok=True)
        raise SourceError(f"{name}: checksum mismatch (expected {want[:16]}…, got "
                          f"{h.hexdigest()[:16]}…): the download was corrupted or the file "
                          "changed upstream; nothing was kept, run again")


def copy_verified(src: Path, dest: Path, *, size: int | None, sha256: str = "",
                  sha1: str = "") -> Path:
    """Copy a local file (the user's Hub cache) onto `dest` through the same checked, atomic
    path (a hard link when the folders share a disk)."""
    src = Path(src).resolve()  # the cache's snapshot entries are symlinks to its blobs
    part = part_path(dest, f"copy:{src}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part.unlink(missing_ok=True)
    try:
        os.link(src, part)
    except OSError:
        with open(src, "rb") as a, open(part, "wb") as b:
            while block := a.read(CHUNK):
                b.write(block)
    _check(part, dest, size, sha256, sha1, dest.name)
    os.replace(part, dest)
    return dest


__all__ = ["Progress", "copy_verified", "fetch", "human", "part_path"]
