"""What the remote sources of a Ray run share across its workers: each judge's budget, each
server's circuit breaker and each answer cache, held in one `Ledger` actor beside the driver,
and the stand-ins a worker's sources use in their place (`SharedBudget`, `SharedBreaker`,
`SharedCache`), which ask the ledger on every call.

One actor serves its calls one at a time, so a budget is checked and reserved atomically for
every worker of the run: parallel workers never overshoot it. The breaker is shared too: once
`THRESHOLD` attempts in a row failed at a server, no worker sends to it until the cool-down
ends — a dead server costs the whole run at most `THRESHOLD` + (workers − 1) attempts (the
calls already past the check when it opened), not that many per worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...core.errors import BudgetExhausted
from ...remote import Budget, CircuitOpen
from ...remote.breaker import Breaker
from ...sources.judge.cache import Cache


class Ledger:
    """The run's shared remote state (plain Python: Ray makes it an actor, `ledger()`).

    `budgets` names each budget (a judge's label) with its (max calls, max USD) limits."""

    def __init__(self, budgets: Mapping[str, tuple[int | None, float | None]] = ()) -> None:
        self.budgets = {name: Budget(calls or None, usd or None)
                        for name, (calls, usd) in dict(budgets).items()}
        self.breakers: dict[str, Breaker] = {}
        self.caches: dict[str, Cache] = {}

    # -- budgets ------------------------------------------------------------------------
    def take_call(self, budget: str, estimate: float) -> str | None:
        """Count one call and reserve `estimate` USD; the reason when it may not go."""
        try:
            self.budgets.setdefault(budget, Budget()).take_call(estimate)
        except BudgetExhausted as e:
            return str(e)
        return None

    def settle(self, budget: str, estimate: float, usd: float) -> None:
        self.budgets.setdefault(budget, Budget()).settle(estimate, usd)

    def spent(self, budget: str) -> tuple[int, float]:
        """(calls sent, USD spent) of a budget so far."""
        b = self.budgets.get(budget) or Budget()
        return b.calls, b.usd

    # -- breakers -----------------------------------------------------------------------
    def _breaker(self, origin: str) -> Breaker:
        return self.breakers.setdefault(origin, Breaker(origin))

    def before(self, origin: str, name: str) -> str | None:
        """None when an attempt may go to `origin` now, else why not."""
        try:
            self._breaker(origin).before(name)
        except CircuitOpen as e:
            return str(e)
        return None

    def success(self, origin: str) -> None:
        self._breaker(origin).success()

    def failure(self, origin: str, why: str) -> None:
        self._breaker(origin).failure(why)

    # -- answer caches ------------------------------------------------------------------
    def _cache(self, path: str) -> Cache:
        if path not in self.caches:
            self.caches[path] = Cache(path)
        return self.caches[path]

    def cache_get(self, path: str, key: str) -> str | None:
        return self._cache(path).get(key)

    def cache_put(self, path: str, key: str, model: str, answer: str,
                  usage: dict[str, Any]) -> None:
        self._cache(path).put(key, model, answer, usage)


def _ask(ledger: Any, method: str, *args: Any) -> Any:
    """Call the ledger: an actor handle (a Ray worker) or a `Ledger` (in one process)."""
    if isinstance(ledger, Ledger):
        return getattr(ledger, method)(*args)
    import ray

    return ray.get(getattr(ledger, method).remote(*args))


@dataclass
class SharedBudget(Budget):
    """The run's budget `name`, kept by the ledger (the `Budget` interface the transport
    uses). Its own counters stay 0: ask `ledger.spent(name)`."""

    ledger: Any = None
    name: str = ""

    def take_call(self, estimate: float = 0.0) -> None:
        why = _ask(self.ledger, "take_call", self.name, estimate)
        if why:
            raise BudgetExhausted(why)

    def settle(self, estimate: float, usd: float) -> None:
        _ask(self.ledger, "settle", self.name, estimate, usd)


@dataclass
class SharedBreaker:
    """The circuit breaker of `origin`, kept by the ledger (the `Breaker` interface)."""

    ledger: Any
    origin: str

    def before(self, name: str) -> None:
        why = _ask(self.ledger, "before", self.origin, name)
        if why:
            raise CircuitOpen(why)

    def success(self) -> None:
        _ask(self.ledger, "success", self.origin)

    def failure(self, why: str) -> None:
        _ask(self.ledger, "failure", self.origin, why)


class SharedCache(Cache):
    """The answer cache at `path` on the driver's machine, through the ledger."""

    def __init__(self, ledger: Any, path: str) -> None:
        super().__init__(None)
        self.ledger, self.shared = ledger, str(path)

    def get(self, key: str) -> str | None:
        return _ask(self.ledger, "cache_get", self.shared, key)

    def put(self, key: str, model: str, answer: str, usage: dict[str, Any]) -> None:
        _ask(self.ledger, "cache_put", self.shared, key, model, answer, usage)
