"""The one place that talks to OpenAI-compatible servers (xAI, vLLM, Ollama, LM Studio, …).

`Remote.chat(**params)` sends one chat completion in a loop of our own that is bounded and
testable: a per-attempt timeout, a total wall time per call (a server dripping bytes cannot
hold it), retries with exponential backoff and jitter on 429/5xx/connection resets/timeouts
honouring `Retry-After`, a per-run `Budget` checked with the request's own size before it is
sent, and the server's circuit breaker, shared by every run in the process. Each request runs
in a worker thread, so a cancel releases the caller at once. `Remote.ask` adds what differs
between servers: JSON forced through the first `response_format` a server accepts, and
parameters it rejects by name left out (one retry). Every attempt can be written to a JSONL
cost log with USD from an editable price table.

- `keys`: which key goes to which host (the user's keys.toml and built-in bindings, never a
  workflow), key-file checks, `redact`;
- `connection`: the one JSON POST (standard library: no ambient headers, no redirects,
  proxies per the user's settings but never for this machine);
- `breaker`: the circuit breaker per server; `streak`: a batch's stop after failures in a row;
- `accounting`: budget, prices, cost log; `transport`: the bounded call.

The API key never leaves this package except in the Authorization header: answers, error
texts, logs, reprs and cost records go through `redact`.
"""

from ..core.errors import BudgetExhausted, ParamRejected, RemoteError
from .accounting import DEFAULT_PRICES, Budget, CostLog, Prices
from .breaker import CircuitOpen
from .keys import (
    HostKey,
    KeyConfigError,
    check_env_name,
    is_local,
    key_for,
    key_to_send,
    redact,
)
from .streak import STOP_AFTER, Streak
from .transport import RESPONSE_FORMATS, RETRY_STATUS, Remote, Reply, response_format, retry_after

__all__ = [
    "DEFAULT_PRICES",
    "RESPONSE_FORMATS",
    "RETRY_STATUS",
    "STOP_AFTER",
    "Budget",
    "BudgetExhausted",
    "CircuitOpen",
    "CostLog",
    "HostKey",
    "KeyConfigError",
    "ParamRejected",
    "Prices",
    "Remote",
    "RemoteError",
    "Reply",
    "Streak",
    "check_env_name",
    "is_local",
    "key_for",
    "key_to_send",
    "redact",
    "response_format",
    "retry_after",
]
