"""One bounded OpenAI-compatible chat call: timeouts, wall time, retries with backoff and
Retry-After, cancellation, the per-run budget checked with the request's own size before it
is sent, the server's process-wide circuit breaker (`breaker`), `response_format` fallback
and rejected parameters dropped. The request itself goes through `connection` (the standard
library: no ambient headers, no redirects, proxies never for this machine); the answer is
redacted of the key before anything reads it."""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import ParamRejected, RemoteError
from .accounting import Budget, CostLog, Prices
from .answer import (
    MAX_CONTENT,
    RESPONSE_FORMATS,
    VALIDATION,
    Reply,
    error_text,
    named_param,
    response_format,
    retry_after,
)
from .breaker import CircuitOpen, breaker
from .connection import (
    MAX_BYTES,
    Answer,
    Connection,
    ProxyError,
    SlowAnswer,
    TooLarge,
    is_timeout,
)
from .keys import mask, redact

log = logging.getLogger("saiten")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def origin(base_url: str) -> str:
    """scheme://host:port of a server URL: what the circuit breaker is keyed by."""
    u = urlsplit(base_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.scheme}://{(u.hostname or '').lower()}:{port}"


class _Retry(Exception):
    def __init__(self, why: str, wait: float | None = None, status: int | None = None,
                 down: bool = True):
        super().__init__(why)
        self.why, self.wait, self.status = why, wait, status
        self.down = down
        """Whether this counts against the server in its circuit breaker (429 does not)."""


Cancel = Callable[[], None]


def _never() -> None:
    """The default `cancel`: nobody cancels."""


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
                 max_bytes: int = MAX_BYTES) -> None:
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
        self._conn: Connection | None = None
        self.breaker = breaker(origin(self.base_url))
        self.rejected: set[str] = set(drop)
        """Parameters this server refuses (given, or learned from its 400 answers)."""
        self.check = check
        """Called with every request body before it is sent; raising stops the send."""
        self._rf = 0  # index into RESPONSE_FORMATS: the first one this server accepted
        self.max_bytes = int(max_bytes)
        """The most bytes of an answer read (TooLarge past it: the call abstains)."""

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

    def _wait(self, seconds: float, cancel: Cancel) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            cancel()
            time.sleep(min(0.1, left))

    def chat(self, *, cancel: Cancel = _never, parse: Callable[[str], Any] | None = None,
             **params: Any) -> Reply:
        """One chat completion (`params`: the request body, as for the OpenAI API).
        `cancel` raises when the user cancelled: this call polls it at least every 50 ms,
        waiting on the socket included, and drops the connection at once. `parse` reads the
        answer's text into `Reply.parsed` within the attempt's time bound.

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
            cancel()
            try:
                self.breaker.before(self.name)
            except CircuitOpen as e:
                raise RemoteError(self.redact(e), attempts=attempt) from None
            self.budget.take_call(estimate)
            t0 = time.monotonic()
            try:
                reply = self._attempt(params, deadline, cancel, parse)
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
                self._wait(delay, cancel)
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

    def ask(self, *, schema: dict[str, Any] | None = None, cancel: Cancel = _never,
            parse: Callable[[str], Any] | None = None, **params: Any) -> Reply:
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
                return self.chat(cancel=cancel, parse=parse, **p)
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

    def _attempt(self, params: dict[str, Any], deadline: float, cancel: Cancel,
                 parse: Callable[[str], Any] | None) -> Reply:
        """One request in a worker thread, so a cancel (or a server that ignores every
        timeout) releases the caller at once; the abandoned request's connection is shut,
        which ends it too. Its reading and parsing are bounded (`max_bytes`, MAX_CONTENT),
        so they never hold the caller long."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retry(f"timeout: no time left within the {self.wall_time:.3g} s bound")
        per_try = min(self.timeout, remaining)
        conn, box = self.connection, {}

        def work() -> None:
            try:
                box["reply"] = self._request(conn, params, per_try, parse)
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
                cancel()
            except BaseException:
                self._abort(conn)  # drop the connection; a new one is opened next time
                raise
            if time.monotonic() > deadline + 0.5:
                self._abort(conn)
                raise _Retry(f"no answer in {time.monotonic() - t0:.1f} s (timeout)")
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _abort(self, conn: Connection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.abort()

    def _request(self, conn: Connection, params: dict[str, Any], per_try: float,
                 parse: Callable[[str], Any] | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        t0 = time.monotonic()
        try:
            answer = conn.post("chat/completions", params, headers,
                               connect_timeout=min(self.connect_timeout, per_try),
                               timeout=per_try, max_bytes=self.max_bytes)
        except TooLarge as e:
            raise RemoteError(f"HTTP 200: {e}") from None
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
        reply = self._reply(answer, params)
        if parse is not None:
            reply.parsed = parse(reply.content)
        return reply

    def _reply(self, answer: Answer, params: dict[str, Any]) -> Reply:
        status = answer.status
        if 300 <= status < 400:
            where = self.redact(answer.headers.get("location") or "?")[:200]
            raise RemoteError(f"HTTP {status}: the server redirects to {where}; redirects "
                              "are not followed (nothing was re-sent): set base_url to the "
                              "server's own address", status=status)
        if status >= 400:
            msg = self.redact(error_text(answer.body))[:300]
            why = f"HTTP {status}: {msg}"
            sent = [k for k in params if k not in ("model", "messages")]
            p = named_param(msg, sent) if status in (400, 404, 422) or (
                status >= 500 and VALIDATION.search(msg)) else None
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
                data = json.loads(mask(json.dumps(data, ensure_ascii=False), [self._key]))
            choice = data["choices"][0]
            content = (choice.get("message") or {}).get("content") or ""
            usage = dict(data.get("usage") or {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            snippet = self.redact(answer.body[:80].decode("utf-8", "replace"))
            raise RemoteError(f"HTTP {status}: the server's answer is not a chat completion: "
                              f"{snippet!r}", status=status) from None
        content = content if isinstance(content, str) else json.dumps(content)
        if len(content) > MAX_CONTENT:
            raise RemoteError(f"HTTP {status}: the answer's text is {len(content):,} "
                              f"characters, more than the {MAX_CONTENT:,} read", status=status)
        # a server echoing the key (in any encoding): gone before anything reads the text
        return Reply(content=self.redact(content), data=data, usage=usage, latency=0.0,
                     attempts=0)
