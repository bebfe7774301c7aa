"""A batch's patience with one server: after `STOP_AFTER` images in a row failed there, the
rest of the batch is skipped (each skipped image abstains, saying why) instead of waiting out
every timeout again. The judge and the HTTP VLM share it; across batches and prompts the
circuit breaker (`breaker`) takes over."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..core.errors import BudgetExhausted, RemoteError

STOP_AFTER = 3
"""Images in a row failing at the server before the rest of the batch is skipped."""

T = TypeVar("T")


class Streak:
    """Consecutive failures at `server` within one batch."""

    def __init__(self, server: str, limit: int = STOP_AFTER) -> None:
        self.server, self.limit = server, limit
        self.errors: list[str] = []

    def skipped(self) -> str | None:
        """Why the next image is skipped, or None while the server still gets a try."""
        if len(self.errors) < self.limit:
            return None
        n = len(self.errors)
        return (f"skipped: {self.server} failed {n} image{'s' if n > 1 else ''} in a row "
                f"({self.errors[-1]})")

    def run(self, call: Callable[[], T]) -> T:
        """`call()`, counting a RemoteError as a failure (a spent budget is not the
        server's failure) and a success as the end of the streak."""
        try:
            got = call()
        except RemoteError as e:
            if not isinstance(e, BudgetExhausted):
                self.errors.append(str(e))
            raise
        self.errors.clear()
        return got
