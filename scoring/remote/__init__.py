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

from ..errors import BudgetExhausted, ParamRejected, RemoteError
from .accounting import DEFAULT_PRICES, Budget, CostLog, Prices
from .keys import NO_KEY, check_env_name, is_local, redact, resolve_key
from .transport import RESPONSE_FORMATS, RETRY_STATUS, Remote, Reply, response_format, retry_after

__all__ = [
    "DEFAULT_PRICES",
    "NO_KEY",
    "RESPONSE_FORMATS",
    "RETRY_STATUS",
    "Budget",
    "BudgetExhausted",
    "CostLog",
    "ParamRejected",
    "Prices",
    "Remote",
    "RemoteError",
    "Reply",
    "check_env_name",
    "is_local",
    "redact",
    "resolve_key",
    "response_format",
    "retry_after",
]
