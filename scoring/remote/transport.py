"""One bounded OpenAI-compatible chat call: timeouts, wall time, retries with backoff and
Retry-After, cancellation, `response_format` fallback and rejected parameters dropped."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ParamRejected, RemoteError
from .accounting import Budget, CostLog, Prices
from .keys import NO_KEY, redact

log = logging.getLogger("saiten")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})

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

