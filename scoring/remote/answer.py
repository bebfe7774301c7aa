"""What a chat-completions server answers, read: the reply, error texts, the parameter a
refusal names, how long it asks us to wait, and the response_format forms to try."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_CONTENT = 32_000
"""The most characters of an answer's text read (a rubric answer is a few hundred)."""


@dataclass
class Reply:
    """One successful chat completion: its text (redacted of the key; at most MAX_CONTENT
    characters), the whole answer, and what the call's `parse` made of the text."""

    content: str
    data: dict[str, Any]
    usage: dict[str, Any]
    latency: float
    attempts: int
    usd: float | None = None
    parsed: Any = None

    @property
    def choice(self) -> dict[str, Any]:
        return (self.data.get("choices") or [{}])[0]


RESPONSE_FORMATS = ("json_schema", "json_object", "none")


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The request's response_format forcing `schema` (json_object+schema is llama.cpp's)."""
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "saiten_scores", "schema": schema}}
    return {"type": "json_object", "schema": schema}


def retry_after(headers: Any) -> float | None:
    """Seconds a server asks us to wait (`retry-after-ms`, `Retry-After` secs or date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_text(body: bytes) -> str:
    """The message of an error answer (OpenAI's {"error": {"message"}} or whatever came)."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("error") or err)
        return str(err)
    return str(data)


def named_param(message: str, params: Iterable[str]) -> str | None:
    """Which of the request's `params` an error message names (longest match first)."""
    low = message.lower()
    for p in sorted(params, key=len, reverse=True):
        if re.search(rf"(?<![a-z_]){re.escape(p.lower())}(?![a-z_])", low):
            return p
    if "response_format" in params and "schema" in low:
        return "response_format"
    return None


VALIDATION = re.compile(r"(?i)validation|should be|not supported|unsupported|invalid|unknown")


__all__ = ["MAX_CONTENT", "RESPONSE_FORMATS", "VALIDATION", "Reply", "error_text",
           "named_param", "response_format", "retry_after"]
