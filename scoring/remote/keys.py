"""API keys: which key goes to which server (the user's configuration, never a workflow's),
and kept out of every text we show or write.

A workflow (saved into every PNG people share) names a server, never a secret. The key for a
server comes from a binding of its host, made outside every workflow:

- built in: `api.x.ai` ← the environment variable `XAI_API_KEY`, else the file
  `<config>/xai_key` (`SAITEN_XAI_KEY_FILE` names another file);
- `<config>/keys.toml` (`SAITEN_KEYS_FILE` names another file), for any other host::

      [hosts."vllm.lan:8000"]      # "host" (any port) or "host:port"
      env = "MY_VLLM_KEY"          # the variable holding the key, read when a call is made
      file = "~/.config/saiten/vllm_key"   # or a file holding it
      http = true                  # allow it over plain http (default: https only)

`<config>` is `$SAITEN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/saiten`, else `~/.config/saiten`.
A host with no binding gets no key; a server on this machine (localhost, 127.x, ::1) never
gets one. A key file — and the keys file itself, which decides where keys go — inside a
folder ComfyUI or a pack serves is refused, checked after resolving symlinks both ways.

Every text we show or write goes through `redact`, which removes the key (or any 10-character
piece of it) and anything shaped like an API key, and withholds a text that gives the key
back in any other form (`echo`). Key files and keys.toml are read up to a few KB, and a key
file other users can read (or a keys.toml they can change) is warned about, as ssh does.
"""


from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import SourceError
from .echo import echoes

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (ComfyUI supports it): the same parser, from PyPI (requirements.txt)
    import tomli as tomllib

BUILTIN_HOSTS = {"api.x.ai": "XAI_API_KEY"}
"""The only bindings made without asking: the known APIs' own variables."""

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
log = logging.getLogger("saiten")
_SKIP = {".git", "node_modules", "__pycache__", ".venv"}
_WALK_LIMIT = 200_000  # entries looked at per served folder when searching for symlinks


class KeyConfigError(SourceError):
    """The key configuration is unusable or unsafe; the message says what to change."""


def config_dir() -> Path:
    """The user's Saiten configuration folder (outside every ComfyUI folder)."""
    if os.environ.get("SAITEN_CONFIG_DIR"):
        return Path(os.environ["SAITEN_CONFIG_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "saiten"


def keys_file() -> Path:
    return Path(os.environ.get("SAITEN_KEYS_FILE") or config_dir() / "keys.toml").expanduser()


def is_loopback(host: str) -> bool:
    """True for a name or address of this machine (no key, never through a proxy)."""
    h = host.strip("[]").lower().rstrip(".")
    if h in _LOCAL_NAMES or h.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(h.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    addr = mapped or addr
    return addr.is_loopback or addr.is_unspecified


_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(?:xai|sk|sk-proj|gsk)-[A-Za-z0-9_-]{12,}\b"),
)


def _spans(text: str, secret: str, width: int = 10) -> list[tuple[int, int]]:
    """Where runs of `width`+ characters of `secret` occur in `text`."""
    spans = []
    for k in range(len(secret) - width + 1):
        piece, start = secret[k:k + width], 0
        while (at := text.find(piece, start)) >= 0:
            spans.append((at, at + width))
            start = at + 1
    return spans


WITHHELD = "[withheld: this text gave the API key back in an encoded form]"
"""What `redact` returns for a text that still decodes to a key once masked."""


def redact(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """`mask`ed `text`; a text that still gives a secret back in any other form (base64,
    hex, URL-encoded, spaced out, split, … see `echo`) is withheld whole."""
    secrets = [x for x in secrets if x and len(x) >= 4]
    s = mask(text, secrets)
    return WITHHELD if secrets and echoes(s, secrets) else s


def mask(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret (or a 10-character piece of one) and anything shaped
    like an API key replaced by *** (fast at any length; `redact` also decodes)."""
    s = str(text)
    for secret in (x for x in secrets if x and len(x) >= 4):
        s = s.replace(secret, "***")
        spans = sorted(_spans(s, secret)) if len(secret) >= 10 else []
        for start, end in reversed(_merge(spans)):
            s = s[:start] + "***" + s[end:]
    s = _SECRET_PATTERNS[0].sub(r"\1***", s)
    return _SECRET_PATTERNS[1].sub("***", s)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def is_local(base_url: str) -> bool:
    """True for servers on this machine (they get no key and no proxy)."""
    return is_loopback(urlsplit(base_url).hostname or "")


def split_url(base_url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a server URL; KeyConfigError for one that is not http(s)."""
    u = urlsplit(base_url.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise KeyConfigError(f"not a server URL: {base_url!r} (want http(s)://host[:port]/v1)")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise KeyConfigError(f"bad port in {base_url!r}") from None
    return u.scheme, u.hostname.lower(), port


@dataclass(frozen=True)
class Binding:
    """One host's key: where it is read from (never the key itself)."""

    host: str
    env: str = ""
    file: str = ""
    http: bool = False
    origin: str = "built in"


@dataclass(frozen=True)
class HostKey:
    """The key a server gets (or None) and, for messages, why."""

    value: str | None = field(repr=False)
    why: str
    binding: Binding | None = None


def _builtin() -> list[Binding]:
    file = os.environ.get("SAITEN_XAI_KEY_FILE") or str(config_dir() / "xai_key")
    return [Binding(h, env=v, file=file) for h, v in BUILTIN_HOSTS.items()]


def load_bindings(path: Path | None = None,
                  served: Iterable[str | os.PathLike[str]] = ()) -> list[Binding]:
    """The keys file's bindings, then the built-in ones it does not override."""
    path = path or keys_file()
    found: list[Binding] = []
    if path.is_file():
        refuse_if_served(path, served, what="keys file")
        warn_if_open(path, "keys file", writable=True)
        try:
            data = tomllib.loads(read_small(path, MAX_KEYS_FILE))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise KeyConfigError(f"the keys file {path} is unreadable: {e}") from None
        hosts = data.get("hosts", {})
        if not isinstance(hosts, dict):
            raise KeyConfigError(f"{path}: [hosts] must be a table of host = {{ env = ... }}")
        for host, entry in hosts.items():
            if isinstance(entry, str):
                entry = {"env": entry}
            if not isinstance(entry, dict) or not (entry.get("env") or entry.get("file")):
                raise KeyConfigError(f"{path}: hosts.{host!r} needs env = \"VAR\" or file = \"…\"")
            unknown = set(entry) - {"env", "file", "http"}
            if unknown:
                raise KeyConfigError(f"{path}: hosts.{host!r} has unknown keys {sorted(unknown)}")
            found.append(Binding(str(host).lower(), env=str(entry.get("env", "")),
                                 file=str(entry.get("file", "")),
                                 http=bool(entry.get("http", False)), origin=str(path)))
    given = {b.host for b in found}
    return found + [b for b in _builtin() if b.host not in given]


MAX_KEY_FILE = 4096
MAX_KEYS_FILE = 64 * 1024
"""The most bytes read of a key file and of keys.toml (a key is under 200 characters)."""


def read_small(path: Path, limit: int) -> str:
    """A small UTF-8 file's text; OSError when it is larger than `limit` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"it is larger than {limit:,} bytes")
    return data.decode("utf-8")


def warn_if_open(path: Path, what: str, *, writable: bool = False) -> str:
    """A warning (logged, and returned) when other users can read `path` — or, with
    `writable`, change it: chmod 600 fixes it, as ssh asks for its keys. "" when fine (and
    always on Windows, where modes do not say this)."""
    if os.name == "nt":
        return ""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return ""
    bad = mode & (0o022 if writable else 0o077)
    if not bad:
        return ""
    who = "changed" if writable else "read"
    msg = (f"the {what} {path} can be {who} by other users (mode {mode:o}): "
           f"run chmod 600 {path}")
    log.warning("saiten: %s", msg)
    return msg


def binding_for(base_url: str, bindings: Iterable[Binding]) -> Binding | None:
    """The binding of the server's `host:port`, else of its host."""
    _, host, port = split_url(base_url)
    table = {b.host: b for b in bindings}
    return table.get(f"{host}:{port}") or table.get(host)


def key_for(base_url: str, served: Iterable[str | os.PathLike[str]] = (),
            path: Path | None = None) -> HostKey:
    """The key the server at `base_url` gets under the user's bindings."""
    scheme, host, _ = split_url(base_url)
    if is_loopback(host):
        return HostKey(None, f"no key: {host} is this machine")
    served = list(served)
    b = binding_for(base_url, load_bindings(path, served))
    if b is None:
        return HostKey(None, f"no key: no key is bound to {host} (bind one in {keys_file()})")
    if scheme != "https" and not b.http:
        return HostKey(None, f"no key: {host}'s key goes over https only (base_url is "
                             "http; add http = true to its entry to allow it)", b)
    if b.env and os.environ.get(b.env, "").strip():
        return HostKey(os.environ[b.env].strip(), f"key from ${b.env} ({b.origin} for {b.host})",
                       b)
    if b.file:
        file = Path(b.file).expanduser()
        if file.is_file():
            refuse_if_served(file, served, what="key file")
            try:
                value = read_small(file, MAX_KEY_FILE).strip()
            except (OSError, UnicodeDecodeError) as e:
                raise KeyConfigError(f"the key file {file} is unreadable: {e}") from None
            if value:
                warning = warn_if_open(file, "key file")
                return HostKey(value, f"key from {file} ({b.origin} for {b.host})"
                               + (f"; warning: {warning}" if warning else ""), b)
    how = " or ".join(x for x in (b.env and f"set the environment variable {b.env}",
                                  b.file and f"write the key to {b.file}") if x)
    return HostKey(None, f"no API key for {host}: {how} (its binding: {b.origin}); restart "
                         "ComfyUI after setting a variable", b)


def key_to_send(base_url: str, served: Iterable[str | os.PathLike[str]] = ()) -> HostKey:
    """The key for `base_url` as a source loads it: a configuration error, or a host that
    has a key bound but not set, is a SourceError saying what to do (never a request
    without the key it needs)."""
    try:
        hk = key_for(base_url, served)
    except KeyConfigError as e:
        raise SourceError(str(e)) from None
    if hk.value is None and hk.binding is not None:
        raise SourceError(hk.why)
    return hk


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _symlinks_to(real: str, root: str) -> str | None:
    """A symlink under `root` whose target is `real` or a folder holding it, or None."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow links
        dirnames[:] = [d for d in dirnames if d not in _SKIP]
        for name in dirnames + filenames:
            seen += 1
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and _inside(real, os.path.realpath(p)):
                return p
        if seen > _WALK_LIMIT:
            return None
    return None


def refuse_if_served(path: Path, served: Iterable[str | os.PathLike[str]], *,
                     what: str = "key file") -> None:
    """KeyConfigError when `path` is inside a served folder, by its own path or its real
    one, or reachable there through a symlink."""
    real, plain = os.path.realpath(path), os.path.abspath(os.path.expanduser(path))
    for folder in served:
        root = os.path.abspath(os.path.expanduser(folder))
        root_real = os.path.realpath(root)
        if _inside(real, root_real) or _inside(plain, root):
            raise KeyConfigError(f"refusing the {what} {path}: it is inside {root}, a folder "
                                 f"ComfyUI or a node pack serves; move it to {config_dir()}")
        link = _symlinks_to(real, root) if os.path.isdir(root) else None
        if link:
            raise KeyConfigError(f"refusing the {what} {path}: the symlink {link} serves it; "
                                 "remove that link")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LOOKS_LIKE_KEY = re.compile(r"^(xai|sk|gsk|sk-proj)[-_]|[a-z].*\d.*[A-Z]|\d.*[a-z].*[A-Z]")


def check_env_name(name: str, widget: str = "key_env") -> str:
    """The NAME of the environment variable holding a key, or ValueError — never echoing the
    value, which might be a pasted key (every widget is saved into each PNG)."""
    name = name.strip()
    if not _ENV_NAME.match(name) or (len(name) > 24 and _LOOKS_LIKE_KEY.search(name)):
        raise ValueError(
            f"{widget} takes the NAME of an environment variable (e.g. XAI_API_KEY), never the "
            "key itself: clear this widget (it is saved into every PNG), set the variable "
            "before starting ComfyUI, or put the key in ~/.config/saiten/xai_key")
    return name


__all__ = ["BUILTIN_HOSTS", "Binding", "HostKey", "KeyConfigError", "binding_for",
           "check_env_name", "config_dir", "is_local", "is_loopback", "key_for", "keys_file",
           "load_bindings", "mask", "redact", "refuse_if_served", "split_url"]
