"""The errors every layer may raise or catch (this module imports nothing of Saiten's)."""

from __future__ import annotations

from typing import Any


class SourceError(Exception):
    """A source cannot run at all (missing dependency, missing or mismatched model file,
    bad option). The message is shown on the node as it is, so it says what to do."""


class Cancelled(Exception):
    """The user cancelled the run; never turned into an abstention."""


class RemoteError(Exception):
    """A remote call failed for good (after its retries); the message is safe to show."""

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



def reason(e: BaseException) -> str:
    """The text an abstention shows for `e`: a SourceError's message as it is, anything
    else prefixed with its type (it was not meant for the user)."""
    return str(e) if isinstance(e, SourceError) else f"{type(e).__name__}: {e}"


__all__ = ["BudgetExhausted", "Cancelled", "ParamRejected", "RemoteError", "SourceError",
           "reason"]
