"""A clock the test drives, for code that takes `clock` / `sleep` callables: nothing waits,
and every time-dependent decision happens at a moment the test chose."""

from __future__ import annotations

from collections.abc import Callable


class FakeClock:
    """`clock()` reads the time; `sleep(s)` and `advance(s)` move it, never blocking.
    `on_sleep(now)` (optional) runs after each sleep: what the world does meanwhile.
    Step in binary-exact amounts (0.25, 0.5, …) to compare times exactly."""

    def __init__(self, start: float = 1000.0,
                 on_sleep: Callable[[float], None] | None = None) -> None:
        self.now = start
        self.slept: list[float] = []
        self._on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self._on_sleep is not None:
            self._on_sleep(self.now)
