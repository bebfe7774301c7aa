"""API keys: looked up in one place (an environment variable named by the user, else a key
file outside every folder ComfyUI serves), and kept out of every text we show or write."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import RemoteError

log = logging.getLogger("saiten")

NO_KEY = "sk-no-key"
"""Sent to servers that need no key (local llama-server, Ollama, LM Studio)."""

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(?:xai|sk|sk-proj|gsk)-[A-Za-z0-9_-]{12,}\b"),
)


def redact(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret and anything shaped like an API key replaced by ***."""
    s = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            s = s.replace(secret, "***")
    s = _SECRET_PATTERNS[0].sub(r"\1***", s)
    return _SECRET_PATTERNS[1].sub("***", s)


def is_local(base_url: str) -> bool:
    """True for servers on this machine (where no key is needed)."""
    host = (urlparse(base_url).hostname or "").lower()
    return host in {"localhost", "127.0.0.1", "::1", "0.0.0.0"} or host.startswith("127.")


def resolve_key(env: str, key_file: str | os.PathLike[str] | None = None,
                forbidden: Iterable[str | os.PathLike[str]] = ()) -> str | None:
    """The API key from the environment variable named `env`, else from `key_file`.

    A key file inside any `forbidden` folder (the folders ComfyUI serves over HTTP) is
    refused: anyone who can reach ComfyUI could read it there.
    """
    if env and os.environ.get(env, "").strip():
        return os.environ[env].strip()
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    if not path.is_file():
        return None
    real = path.resolve()
    for folder in forbidden:
        root = Path(folder).expanduser().resolve()
        if real == root or root in real.parents:
            raise RemoteError(f"refusing the key file {path}: it is inside {root}, a folder "
                              "ComfyUI serves; move it (e.g. to ~/.config/saiten/)")
    key = path.read_text(encoding="utf-8").strip()
    return key or None



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
