"""The one place that talks to OpenAI-compatible servers (xAI, vLLM, Ollama, LM Studio, …).

`Remote.chat(**params)` sends one chat completion (`scoring.httpclient`: the standard library,
no ambient headers, no redirects, proxies never for this machine) in a loop of our own that is
bounded and testable: a per-attempt timeout, a total wall time per call (a server dripping
bytes cannot hold it), retries with exponential backoff and jitter on 429/5xx/connection
resets/timeouts honouring `Retry-After`, a per-run `Budget` checked with the request's own
size before it is sent, and the process-wide circuit breaker of the server
(`scoring.breaker`). Each request runs in a worker thread, so a cancel releases the caller at
once. `Remote.ask` adds what differs between servers: JSON forced through the first
`response_format` a server accepts, and parameters it rejects by name left out (one retry).
Every attempt can be written to a JSONL cost log with USD from an editable price table.

The API key (bound to the server's host by `scoring.hostkeys`) never leaves this module except
in the Authorization header: answers, error texts, logs, reprs and cost records go through
`redact`.
"""

from __future__ import annotations

import email.utils
import http.client
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
from urllib.parse import urlsplit

from .breaker import CircuitOpen, breaker
from .hostkeys import is_loopback
from .httpclient import Answer, Connection, ProxyError, SlowAnswer, is_timeout

log = logging.getLogger("saiten")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


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


def _spans(text: str, secret: str, width: int = 10) -> list[tuple[int, int]]:
    """Where runs of `width`+ characters of `secret` occur in `text`."""
    spans = []
    for k in range(len(secret) - width + 1):
        piece, start = secret[k:k + width], 0
        while (at := text.find(piece, start)) >= 0:
            spans.append((at, at + width))
            start = at + 1
    return spans


def redact(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret (or a 10-character piece of one) and anything shaped
    like an API key replaced by ***."""
    s = str(text)
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
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


def origin(base_url: str) -> str:
    """scheme://host:port of a server URL: what the circuit breaker is keyed by."""
    u = urlsplit(base_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.scheme}://{(u.hostname or '').lower()}:{port}"


# -- budget, prices, cost log ----------------------------------------------------------
@dataclass
class Budget:
    """A per-run limit on calls sent and USD spent (None or 0: no limit). Thread-safe.

    A call reserves the most it could cost (`estimate`, from its own size) before it is
    sent, so the limit is never overshot; `settle` replaces that with what it cost."""

    max_calls: int | None = None
    max_usd: float | None = None
    calls: int = 0
    usd: float = 0.0
    reserved: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reason(self, estimate: float = 0.0) -> str | None:
        """Why no further call (that may cost `estimate`) may be made, or None."""
        if self.max_calls and self.calls >= self.max_calls:
            return f"budget exhausted: {self.calls} of max {self.max_calls} calls made"
        if self.max_usd and self.usd >= self.max_usd:
            return f"budget exhausted: ${self.usd:.4f} of max ${self.max_usd:.4f} spent"
        if self.max_usd and self.usd + self.reserved + estimate > self.max_usd:
            return (f"budget: this call could cost up to ${estimate:.4f} and ${self.usd:.4f} "
                    f"of max ${self.max_usd:.4f} is spent; not sent")
        return None

    def take_call(self, estimate: float = 0.0) -> None:
        """Count one call about to be sent and reserve `estimate` USD, or raise
        BudgetExhausted."""
        with self._lock:
            why = self.reason(estimate)
            if why:
                raise BudgetExhausted(why)
            self.calls += 1
            self.reserved += estimate

    def settle(self, estimate: float, usd: float) -> None:
        """The call that reserved `estimate` cost `usd`."""
        with self._lock:
            self.reserved = max(0.0, self.reserved - estimate)
            self.usd += usd

    def spend(self, usd: float) -> None:
        self.settle(0.0, usd)


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

    def most(self, params: dict[str, Any]) -> float:
        """The most a request could cost, from its own size: a token is at least one byte
        of prompt text (an image part counts `IMAGE_TOKENS`), the answer at most its
        `max_tokens` (`DEFAULT_OUTPUT_TOKENS` when the request sets none), times `n`."""
        rate = self.rate(str(params.get("model", "")))
        if rate is None:
            return 0.0
        prompt = 0
        for m in params.get("messages") or []:
            parts = m.get("content")
            parts = parts if isinstance(parts, list) else [parts]
            for part in parts:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    prompt += IMAGE_TOKENS
                else:
                    text = part.get("text", "") if isinstance(part, dict) else part
                    prompt += len(str(text or "").encode("utf-8")) + 8
        out = params.get("max_tokens") or params.get("max_completion_tokens") \
            or DEFAULT_OUTPUT_TOKENS
        n = int(params.get("n") or 1)
        return n * (prompt * rate.get("input", 0.0) + int(out) * rate.get("output", 0.0)) / 1e6


IMAGE_TOKENS = 2000
DEFAULT_OUTPUT_TOKENS = 4096


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


def _error_text(body: bytes) -> str:
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


_VALIDATION = re.compile(r"(?i)validation|should be|not supported|unsupported|invalid|unknown")


class _Retry(Exception):
    def __init__(self, why: str, wait: float | None = None, status: int | None = None,
                 down: bool = True):
        super().__init__(why)
        self.why, self.wait, self.status = why, wait, status
        self.down = down
        """Whether this counts against the server in its circuit breaker (429 does not)."""


class Remote:
    """A bounded chat-completions caller for one server.

    `timeout` bounds each attempt (`connect_timeout` its connecting), `wall_time` (default
    `timeout * (max_retries + 1)`) the whole call including backoff sleeps; `max_retries`
    retries follow the first try. `name` says what the server is in messages ("judge").
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 2, wall_time: float | None = None,
                 connect_timeout: float = 5.0, name: str = "server",
                 budget: Budget | None = None, prices: Prices | None = None,
                 cost_log: CostLog | None = None, backoff: float = 0.5,
                 backoff_max: float = 8.0, seed: int | None = None, drop: Iterable[str] = (),
                 check: Callable[[dict[str, Any]], None] | None = None,
                 cancel: Callable[[], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key or None
        self.name = name
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.max_retries = max(0, int(max_retries))
        self.wall_time = float(wall_time) if wall_time else self.timeout * (self.max_retries + 1)
        self.budget = budget or Budget()
        self.prices = prices or Prices({})
        self.cost_log = cost_log
        self.backoff, self.backoff_max = backoff, backoff_max
        self._rng = random.Random(seed)
        self.cancel: Callable[[], None] = cancel or (lambda: None)
        """Raises when the user cancelled: polled before and during attempts and sleeps."""
        self._conn: Connection | None = None
        self.breaker = breaker(origin(self.base_url))
        self.rejected: set[str] = set(drop)
        """Parameters this server refuses (given, or learned from its 400 answers)."""
        self.check = check
        """Called with every request body before it is sent; raising stops the send."""
        self._rf = 0  # index into RESPONSE_FORMATS: the first one this server accepted

    def __repr__(self) -> str:
        return f"Remote({self.base_url!r}, key={'set' if self._key else 'none'})"

    def redact(self, text: Any) -> str:
        return redact(text, [self._key])

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = Connection(self.base_url)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

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
        """One chat completion (`params`: the request body, as for the OpenAI API).

        Raises BudgetExhausted before sending when the budget (with this request's most
        possible cost) is spent, ParamRejected when the server names a parameter it refuses,
        RemoteError when every attempt failed or the server's circuit breaker is open.
        """
        if self.check is not None:
            self.check(params)
        start = time.monotonic()
        deadline = start + self.wall_time
        model = str(params.get("model", ""))
        estimate = self.prices.most(params)
        attempt = 0
        while True:
            self.cancel()
            try:
                self.breaker.before(self.name)
            except CircuitOpen as e:
                raise RemoteError(self.redact(e), attempts=attempt) from None
            self.budget.take_call(estimate)
            t0 = time.monotonic()
            try:
                reply = self._attempt(params, deadline)
            except _Retry as r:
                self.budget.settle(estimate, 0.0)
                (self.breaker.failure if r.down else lambda _: self.breaker.success())(r.why)
                self._log(model, t0, error=r.why, status=r.status)
                remaining = deadline - time.monotonic()
                spent = time.monotonic() - start
                if attempt >= self.max_retries:
                    raise RemoteError(f"{r.why} (gave up after {attempt + 1} attempts in "
                                      f"{spent:.1f} s)", status=r.status,
                                      attempts=attempt + 1) from None
                delay = self._delay(attempt, r.wait)
                if delay >= remaining:
                    asked = f"server asked to wait {r.wait:.0f} s; " if r.wait else ""
                    raise RemoteError(
                        f"{r.why} ({asked}{attempt + 1} attempts in {spent:.1f} s, stopped "
                        f"at the {self.wall_time:.3g} s time bound)",
                        status=r.status, attempts=attempt + 1) from None
                log.info("saiten: %s; retry %d in %.1f s", r.why, attempt + 1, delay)
                self._wait(delay)
                attempt += 1
                continue
            except RemoteError as e:
                self.budget.settle(estimate, 0.0)
                self.breaker.success()  # it answered: the server is up
                e.attempts = attempt + 1
                self._log(model, t0, error=str(e), status=e.status)
                raise
            except BaseException:
                self.budget.settle(estimate, 0.0)
                raise
            self.breaker.success()
            reply.attempts = attempt + 1
            reply.latency = time.monotonic() - start
            reply.usd = self.prices.usd(model, reply.usage)
            self.budget.settle(estimate, reply.usd or 0.0)
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
        conn, box = self.connection, {}

        def work() -> None:
            try:
                box["reply"] = self._request(conn, params, per_try)
            except BaseException as e:
                box["error"] = e

        t0 = time.monotonic()
        worker = threading.Thread(target=work, name="saiten-remote", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
            if not worker.is_alive():
                break
            try:
                self.cancel()
            except BaseException:
                self.close()  # drop the connection; a new one is opened next time
                raise
            if time.monotonic() > deadline + 2.0:
                self.close()
                raise _Retry(f"no answer in {time.monotonic() - t0:.1f} s (timeout)")
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _request(self, conn: Connection, params: dict[str, Any], per_try: float) -> Reply:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        t0 = time.monotonic()
        try:
            answer = conn.post("chat/completions", params, headers,
                               connect_timeout=min(self.connect_timeout, per_try),
                               timeout=per_try)
        except SlowAnswer as e:
            raise _Retry(f"{e} (slow server)") from None
        except ProxyError as e:
            raise RemoteError(str(e)) from None
        except OSError as e:
            spent = time.monotonic() - t0
            if is_timeout(e):
                raise _Retry(f"no answer in {spent:.1f} s (timeout {per_try:.3g} s, "
                             f"{conn.via})") from None
            raise _Retry(self.redact(f"connection failed ({conn.via}): "
                                     f"{type(e).__name__}: {e}")) from None
        except http.client.HTTPException as e:
            raise _Retry(self.redact(f"bad HTTP answer: {type(e).__name__}: {e}")) from None
        return self._reply(answer, params)

    def _reply(self, answer: Answer, params: dict[str, Any]) -> Reply:
        status = answer.status
        if 300 <= status < 400:
            where = self.redact(answer.headers.get("location") or "?")[:200]
            raise RemoteError(f"HTTP {status}: the server redirects to {where}; redirects "
                              "are not followed (nothing was re-sent): set base_url to the "
                              "server's own address", status=status)
        if status >= 400:
            msg = self.redact(_error_text(answer.body))[:300]
            why = f"HTTP {status}: {msg}"
            sent = [k for k in params if k not in ("model", "messages")]
            p = named_param(msg, sent) if status in (400, 404, 422) or (
                status >= 500 and _VALIDATION.search(msg)) else None
            if p:  # e.g. llama_cpp.server answers 500 to response_format json_schema
                raise ParamRejected(f"server rejected parameter {p!r}: {why}", p,
                                    status=status)
            if status in RETRY_STATUS:
                raise _Retry(why, retry_after(answer.headers), status,
                             down=status not in (429, 409, 425))
            if status in (401, 403):
                why += (" (no key was sent: bind one to this host in keys.toml)" if not
                        self._key else " (check the key bound to this host)")
            raise RemoteError(why, status=status)
        try:
            data = json.loads(answer.body.decode("utf-8"), strict=False)
            if self._key:  # a server echoing the key: gone before anything reads the answer
                data = json.loads(self.redact(json.dumps(data, ensure_ascii=False)))
            choice = data["choices"][0]
            content = (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            snippet = self.redact(answer.body[:80].decode("utf-8", "replace"))
            raise RemoteError(f"HTTP {status}: the server's answer is not a chat completion: "
                              f"{snippet!r}", status=status) from None
        return Reply(content=str(content), data=data, usage=dict(data.get("usage") or {}),
                     latency=0.0, attempts=0)
