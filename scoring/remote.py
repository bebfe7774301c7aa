"""The one place that talks to OpenAI-compatible servers (xAI, vLLM, Ollama, LM Studio, …).

`Remote.chat(**params)` sends one chat completion with the `openai` client (its own retries
off) and a loop of our own that is bounded and testable: a per-attempt timeout, a total wall
time per call (a server dripping bytes cannot hold it), retries with exponential backoff and
jitter on 429/5xx/connection resets/timeouts honouring `Retry-After`, and a per-run `Budget`.
Each request runs in a worker thread, so a cancel releases the caller at once. `Remote.ask`
adds what differs between servers: JSON forced through the first `response_format` a server
accepts, and parameters it rejects by name left out (one retry). Every attempt can be written
to a JSONL cost log with USD from an editable price table.

The API key never leaves this module except in the Authorization header: error texts, logs,
reprs and cost records go through `redact`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("saiten")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
NO_KEY = "sk-no-key"
"""Sent to servers that need no key (local llama-server, Ollama, LM Studio)."""


class RemoteError(Exception):
    """A call failed for good (after its retries); the message is safe to show."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class ParamRejected(RemoteError):
    """The server refused a request parameter by name (HTTP 400/422): retry without it."""

    def __init__(self, message: str, param: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.param = param


class BudgetExhausted(RemoteError):
    """The run's budget (calls or USD) is spent; the caller abstains with this message."""


# -- secrets ---------------------------------------------------------------------------
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


# -- budget, prices, cost log ----------------------------------------------------------
@dataclass
class Budget:
    """A per-run limit on calls sent and USD spent (None or 0: no limit). Thread-safe."""

    max_calls: int | None = None
    max_usd: float | None = None
    calls: int = 0
    usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reason(self) -> str | None:
        """Why no further call may be made, or None."""
        if self.max_calls and self.calls >= self.max_calls:
            return f"budget exhausted: {self.calls} of max {self.max_calls} calls made"
        if self.max_usd and self.usd >= self.max_usd:
            return f"budget exhausted: ${self.usd:.4f} of max ${self.max_usd:.4f} spent"
        return None

    def take_call(self) -> None:
        """Count one call about to be sent, or raise BudgetExhausted."""
        with self._lock:
            why = self.reason()
            if why:
                raise BudgetExhausted(why)
            self.calls += 1

    def spend(self, usd: float) -> None:
        with self._lock:
            self.usd += usd


DEFAULT_PRICES: dict[str, dict[str, float]] = {
    # USD per 1M tokens (docs.x.ai model pages); edit prices.json next to the cost log.
    "grok-4-1-fast-non-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-1-fast-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-fast-non-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4-fast-reasoning": {"input": 0.20, "cached_input": 0.05, "output": 0.50},
    "grok-4.20-non-reasoning": {"input": 1.25, "cached_input": 0.20, "output": 2.50},
    "grok-4.20-reasoning": {"input": 1.25, "cached_input": 0.20, "output": 2.50},
    "grok-4": {"input": 3.00, "cached_input": 0.75, "output": 15.00},
    "grok-3-mini": {"input": 0.30, "cached_input": 0.075, "output": 0.50},
}


class Prices:
    """USD per 1M tokens by model name, from a JSON file the user can edit.

    `Prices.at(path)` writes the defaults there on first use. A model not in the table
    costs 0 and is reported as unpriced; local servers simply are not listed.
    """

    def __init__(self, table: dict[str, dict[str, float]] | None = None) -> None:
        self.table = dict(DEFAULT_PRICES if table is None else table)

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Prices:
        p = Path(path)
        if p.is_file():
            try:
                return cls(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                log.warning("saiten: price table %s unreadable (%s); using defaults", p, e)
                return cls()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(DEFAULT_PRICES, indent=2) + "\n", encoding="utf-8")
        return cls()

    def rate(self, model: str) -> dict[str, float] | None:
        if model in self.table:
            return self.table[model]
        base = re.sub(r"-(latest|\d{4}(-\d\d-\d\d)?)$", "", model)
        return self.table.get(base)

    def usd(self, model: str, usage: dict[str, Any]) -> float | None:
        """Cost of one call from its `usage`, or None when the model has no price."""
        rate = self.rate(model)
        if rate is None:
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached_rate = rate.get("cached_input", rate.get("input", 0.0))
        return ((prompt - cached) * rate.get("input", 0.0) + cached * cached_rate
                + completion * rate.get("output", 0.0)) / 1e6


class CostLog:
    """Appends one JSONL record per call (and per cache hit) and keeps the run's totals."""

    def __init__(self, path: str | os.PathLike[str] | None, secrets: Iterable[str | None] = ()):
        self.path = Path(path) if path else None
        self.secrets = [s for s in secrets if s]
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, **record: Any) -> dict[str, Any]:
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        line = redact(json.dumps(rec, ensure_ascii=False), self.secrets)
        with self._lock:
            self.records.append(json.loads(line))
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
        return rec

    @property
    def usd(self) -> float:
        return sum(r.get("usd") or 0.0 for r in self.records)

    @property
    def calls(self) -> int:
        return sum(1 for r in self.records if not r.get("cache_hit"))

    @property
    def cache_hits(self) -> int:
        return sum(1 for r in self.records if r.get("cache_hit"))

    def summary(self) -> str:
        return f"{self.calls} calls, {self.cache_hits} cache hits, ${self.usd:.4f}"


# -- the call --------------------------------------------------------------------------
@dataclass
class Reply:
    """One successful chat completion."""

    content: str
    data: dict[str, Any]
    usage: dict[str, Any]
    latency: float
    attempts: int
    usd: float | None = None

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


def _import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise RemoteError("the openai package is missing: pip install 'openai>=1.40'") from None
    return openai


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


def _error_text(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("error") or err)
        return str(err)
    return str(getattr(e, "message", "") or e)


def named_param(message: str, params: Iterable[str]) -> str | None:
    """Which of the request's `params` an error message names (longest match first)."""
    low = message.lower()
    for p in sorted(params, key=len, reverse=True):
        if re.search(rf"(?<![a-z_]){re.escape(p.lower())}(?![a-z_])", low):
            return p
    if "response_format" in params and "schema" in low:
        return "response_format"
    return None


_VALIDATION = re.compile(r"(?i)validation|should be|not supported|unsupported|invalid|unknown")


class _Retry(Exception):
    def __init__(self, why: str, wait: float | None = None, status: int | None = None):
        super().__init__(why)
        self.why, self.wait, self.status = why, wait, status


class Remote:
    """A bounded chat-completions caller for one server.

    `timeout` bounds each attempt, `wall_time` (default `timeout * (max_retries + 1)`)
    the whole call including backoff sleeps; `max_retries` retries follow the first try.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 2, wall_time: float | None = None,
                 budget: Budget | None = None, prices: Prices | None = None,
                 cost_log: CostLog | None = None, backoff: float = 0.5,
                 backoff_max: float = 8.0, seed: int | None = None, drop: Iterable[str] = (),
                 check: Callable[[dict[str, Any]], None] | None = None,
                 cancel: Callable[[], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key or NO_KEY
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.wall_time = float(wall_time) if wall_time else self.timeout * (self.max_retries + 1)
        self.budget = budget or Budget()
        self.prices = prices or Prices({})
        self.cost_log = cost_log
        self.backoff, self.backoff_max = backoff, backoff_max
        self._rng = random.Random(seed)
        self.cancel: Callable[[], None] = cancel or (lambda: None)
        """Raises when the user cancelled: polled before and during attempts and sleeps."""
        self._client: Any = None
        self.rejected: set[str] = set(drop)
        """Parameters this server refuses (given, or learned from its 400 answers)."""
        self.check = check
        """Called with every request body before it is sent; raising stops the send."""
        self._rf = 0  # index into RESPONSE_FORMATS: the first one this server accepted

    def __repr__(self) -> str:
        return f"Remote({self.base_url!r}, key={'set' if self._key != NO_KEY else 'none'})"

    def redact(self, text: Any) -> str:
        return redact(text, [self._key])

    @property
    def client(self) -> Any:
        if self._client is None:
            openai = _import_openai()
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self._key,
                                         max_retries=0, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _delay(self, attempt: int, wait: float | None) -> float:
        if wait is not None:
            return wait + self._rng.uniform(0, 0.1 * wait + 0.05)
        d = min(self.backoff_max, self.backoff * 2 ** attempt)
        return d / 2 + self._rng.uniform(0, d / 2)

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.cancel()
            time.sleep(min(0.1, left))

    def chat(self, **params: Any) -> Reply:
        """One chat completion (`params` as for `client.chat.completions.create`).

        Raises BudgetExhausted before sending when the budget is spent, ParamRejected when
        the server names a parameter it refuses, RemoteError when every attempt failed.
        """
        if self.check is not None:
            self.check(params)
        _ = self.client  # import openai and build the client before the clock starts
        start = time.monotonic()
        deadline = start + self.wall_time
        model = str(params.get("model", ""))
        attempt = 0
        while True:
            self.cancel()
            self.budget.take_call()
            t0 = time.monotonic()
            try:
                reply = self._attempt(params, deadline)
            except _Retry as r:
                self._log(model, t0, error=r.why, status=r.status)
                remaining = deadline - time.monotonic()
                if attempt >= self.max_retries:
                    raise RemoteError(f"{r.why} (gave up after {attempt + 1} attempts)",
                                      status=r.status, attempts=attempt + 1) from None
                delay = self._delay(attempt, r.wait)
                if delay >= remaining:
                    asked = f"server asked to wait {r.wait:.0f} s; " if r.wait else ""
                    raise RemoteError(
                        f"{r.why} ({asked}{attempt + 1} attempts, stopped at the "
                        f"{self.wall_time:.3g} s time bound)",
                        status=r.status, attempts=attempt + 1) from None
                log.info("saiten: %s; retry %d in %.1f s", r.why, attempt + 1, delay)
                self._wait(delay)
                attempt += 1
                continue
            except RemoteError as e:
                e.attempts = attempt + 1
                self._log(model, t0, error=str(e), status=e.status)
                raise
            reply.attempts = attempt + 1
            reply.latency = time.monotonic() - start
            reply.usd = self.prices.usd(model, reply.usage)
            if reply.usd:
                self.budget.spend(reply.usd)
            self._log(model, t0, usage=reply.usage, usd=reply.usd)
            return reply

    def ask(self, *, schema: dict[str, Any] | None = None, **params: Any) -> Reply:
        """`chat` with what this server accepts: JSON forced by `schema` in the first
        response_format it takes (json_schema → json_object+schema → none, remembered),
        parameters it rejected left out, and one retry without a newly rejected one."""
        retried = False
        while True:
            p = {k: v for k, v in params.items() if k not in self.rejected}
            mode = RESPONSE_FORMATS[self._rf]
            if schema is not None and mode != "none":
                p["response_format"] = response_format(mode, schema)
            try:
                return self.chat(**p)
            except ParamRejected as e:
                if e.param == "response_format" and "response_format" in p:
                    self._rf += 1
                    log.info("saiten: %s refuses response_format %s; trying %s",
                             self.base_url, mode, RESPONSE_FORMATS[self._rf])
                    continue
                if retried or e.param not in p or e.param in ("model", "messages"):
                    raise
                log.info("saiten: %s refuses %r; retrying without it", self.base_url, e.param)
                self.rejected.add(e.param)
                retried = True

    def _log(self, model: str, t0: float, *, usage: dict[str, Any] | None = None,
             usd: float | None = None, error: str | None = None,
             status: int | None = None) -> None:
        if self.cost_log is None:
            return
        usage = usage or {}
        rec: dict[str, Any] = {
            "model": model, "base_url": self.base_url,
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "usd": usd or 0.0, "priced": usd is not None or error is not None,
            "latency": round(time.monotonic() - t0, 3), "cache_hit": False,
        }
        if error:
            rec.update(error=self.redact(error), status=status)
        self.cost_log.add(**rec)

    def _attempt(self, params: dict[str, Any], deadline: float) -> Reply:
        """One request in a worker thread, so a cancel (or a server that ignores every
        timeout) releases the caller at once; the abandoned request ends at its timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retry(f"timeout: no time left within the {self.wall_time:.3g} s bound")
        per_try = min(self.timeout, remaining)
        client, box = self.client, {}

        def work() -> None:
            try:
                box["reply"] = self._request(client, params, deadline, per_try)
            except BaseException as e:
                box["error"] = e

        worker = threading.Thread(target=work, name="saiten-remote", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
            if not worker.is_alive():
                break
            try:
                self.cancel()
            except BaseException:
                self.close()  # drop the connection pool; a new client is built next time
                raise
            if time.monotonic() > deadline + 2.0:
                self.close()
                raise _Retry(f"no answer within the {self.wall_time:.3g} s bound (timeout)")
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _request(self, client: Any, params: dict[str, Any], deadline: float,
                 per_try: float) -> Reply:
        openai = _import_openai()
        t0 = time.monotonic()
        try:
            with client.chat.completions.with_streaming_response.create(
                    **params, timeout=per_try) as resp:
                buf = bytearray()
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if time.monotonic() > deadline or time.monotonic() - t0 > per_try:
                        raise _Retry(f"answer still arriving after {per_try:.3g} s (slow server)")
                status = resp.status_code
        except _Retry:
            raise
        except openai.APITimeoutError:
            raise _Retry(f"no answer within {per_try:.3g} s (timeout)") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise _Retry(self.redact(f"connection failed: {type(cause).__name__}: {cause}")
                         ) from None
        except openai.APIStatusError as e:
            msg = self.redact(_error_text(e))[:300]
            status = e.status_code
            why = f"HTTP {status}: {msg}"
            sent = [k for k in params if k not in ("model", "messages")]
            p = named_param(msg, sent) if status in (400, 404, 422) or (
                status >= 500 and _VALIDATION.search(msg)) else None
            if p:  # e.g. llama_cpp.server answers 500 to response_format json_schema
                raise ParamRejected(f"server rejected parameter {p!r}: {why}", p,
                                    status=status) from None
            if status in RETRY_STATUS:
                raise _Retry(why, retry_after(e.response.headers), status) from None
            if status in (401, 403):
                why += " (check the API key's environment variable / key file)"
            raise RemoteError(why, status=status) from None
        try:
            data = json.loads(bytes(buf).decode("utf-8"), strict=False)
            choice = data["choices"][0]
            content = (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            snippet = self.redact(bytes(buf[:80]).decode("utf-8", "replace"))
            raise RemoteError(f"HTTP {status}: the server's answer is not a chat completion: "
                              f"{snippet!r}", status=status) from None
        return Reply(content=str(content), data=data, usage=dict(data.get("usage") or {}),
                     latency=0.0, attempts=0)
