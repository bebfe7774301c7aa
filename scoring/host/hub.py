"""The Hugging Face Hub through `huggingface_hub`: where a repository file is and what it must
be (size, and the sha256 of an LFS file or the git sha1 of a small one), the files of a
repository, the user's Hub cache, and errors turned into what to do.

`HF_ENDPOINT` and `HF_HUB_OFFLINE` are read when a call is made; the token is the user's own
(`HF_TOKEN` or `hf auth login`, as huggingface_hub finds it), sent to the endpoint's host only,
never to a download location on another host and never shown.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import SourceError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_ENDPOINT = "https://huggingface.co"


def offline() -> bool:
    """Whether the Hub must not be contacted (HF_HUB_OFFLINE=1)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def endpoint() -> str:
    """The Hub to use: HF_ENDPOINT, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def page(repo: str, subfolder: str = "") -> str:
    """The repository's page (where a gated repository's terms are accepted)."""
    return f"{endpoint()}/{repo}" + (f"/tree/main/{subfolder}" if subfolder else "")


def _hf() -> Any:
    try:
        import huggingface_hub
    except ImportError as e:
        raise SourceError("huggingface_hub is not installed: pip install huggingface_hub") from e
    return huggingface_hub


@dataclass(frozen=True)
class Located:
    """Where to GET a file and what it must be once fetched."""

    url: str
    size: int | None
    sha256: str = ""
    sha1: str = ""  # the git blob sha1 of a file stored without LFS
    headers: tuple[tuple[str, str], ...] = ()


def _auth_for(url: str) -> tuple[tuple[str, str], ...]:
    """The Hub's headers (the user's token) when `url` is on the endpoint's host, else none."""
    if urlsplit(url).netloc.lower() != urlsplit(endpoint()).netloc.lower():
        return ()
    headers = _hf().utils.build_hf_headers()
    auth = headers.get("authorization") or headers.get("Authorization")
    return (("Authorization", auth),) if auth else ()


def locate(repo: str, remote: str, revision: str | None = None) -> Located:
    """The download location, size and checksum of `remote` in `repo` (a HEAD to the Hub)."""
    hf = _hf()
    url = hf.hf_hub_url(repo, remote, revision=revision, endpoint=endpoint())
    try:
        meta = hf.get_hf_file_metadata(url, endpoint=endpoint())
    except Exception as e:
        raise explain(e, repo, remote) from e
    etag = (meta.etag or "").strip('"').lower()
    size = meta.size if isinstance(meta.size, int) and meta.size >= 0 else None
    where = meta.location or url
    if not urlsplit(where).scheme:  # a relative redirect
        where = f"{endpoint()}/{where.lstrip('/')}"
    # an LFS file's etag is its sha256; a small file's is not documented as a checksum:
    # it is checked by its size here, by its git sha1 when it comes from a listing
    return Located(where, size, sha256=etag if _SHA256.match(etag) else "",
                   headers=_auth_for(where))


@dataclass(frozen=True)
class RepoEntry:
    """One file of a repository listing."""

    path: str
    size: int
    sha256: str = ""
    sha1: str = ""  # the git blob id of a file stored without LFS


def list_files(repo: str, patterns: Sequence[str] = ("*",), revision: str | None = None
               ) -> list[RepoEntry]:
    """The repository's files matching any of `patterns` (fnmatch on the path), with sizes and
    LFS checksums."""
    hf = _hf()
    try:
        api = hf.HfApi(endpoint=endpoint())
        tree = list(api.list_repo_tree(repo, recursive=True, revision=revision))
    except Exception as e:
        raise explain(e, repo, "") from e
    out = []
    for item in tree:
        size = getattr(item, "size", None)
        if not isinstance(size, int) or not any(fnmatch.fnmatch(item.path, p) for p in patterns):
            continue
        lfs = getattr(item, "lfs", None)
        sha = str(getattr(lfs, "sha256", "") or "").lower()
        blob = str(getattr(item, "blob_id", "") or "").lower()
        out.append(RepoEntry(item.path, size, sha if _SHA256.match(sha) else "",
                             blob if not lfs and _SHA1.match(blob) else ""))
    return sorted(out, key=lambda e: e.path)


def cache_dir() -> Path:
    """The user's Hub cache as the environment says now: HF_HUB_CACHE, else $HF_HOME/hub, else
    ~/.cache/huggingface/hub (huggingface_hub reads these once, at its import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def cached(repo: str, remote: str, revision: str | None = None) -> Path | None:
    """The file from the user's Hub cache, when it is there."""
    try:
        got = _hf().try_to_load_from_cache(repo, remote, cache_dir=cache_dir(),
                                           revision=revision)
    except Exception:
        return None
    return Path(got) if isinstance(got, str) and Path(got).is_file() else None


def token_hint() -> str:
    return ("log in with `hf auth login` (huggingface_hub keeps the token in its own "
            "configuration) or set HF_TOKEN in the environment that starts ComfyUI or the CLI — "
            "never in a workflow widget")


def explain(e: BaseException, repo: str, remote: str) -> SourceError:
    """A Hub failure as what to do about it (gated, missing, offline, network)."""
    name = type(e).__name__
    status = getattr(getattr(e, "response", None), "status_code", None)
    what = f"{repo}/{remote}" if remote else repo
    if name == "GatedRepoError" or (status in (401, 403) and "gated" in str(e).lower()):
        return SourceError(
            f"{repo} is a gated repository: open {page(repo)}, log in and accept its terms "
            f"(its licence forbids redistribution, so Saiten only fetches it from there), then "
            f"{token_hint()}. The HF_TOKEN must belong to the account that accepted them")
    if status in (401, 403) or name == "RepositoryNotFoundError":
        return SourceError(f"{what}: the Hub refused access ({status or 'not found'}): check the "
                           f"repository name, or if it is private/gated {token_hint()}")
    if name in ("EntryNotFoundError", "RemoteEntryNotFoundError") or status == 404:
        return SourceError(f"{what} is not on the Hub ({endpoint()})")
    if name == "OfflineModeIsEnabled":
        return SourceError("the Hub is offline (HF_HUB_OFFLINE)")
    first = (str(e).splitlines() or [""])[0][:300]
    return SourceError(f"cannot reach the Hub for {what} ({endpoint()}): {name}: {first}")


__all__ = ["Located", "RepoEntry", "cache_dir", "cached", "endpoint", "explain", "list_files",
           "locate", "offline", "page", "token_hint"]
