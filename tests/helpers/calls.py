"""Calls to the fake OpenAI-compatible server as the transport and accounting tests make
them: `MSG`, `remote(fakeapi, **kw)` (a Remote with the fake key, a 1 s timeout, short
backoffs and a fixed jitter seed) and `timed(fn)` ((result or RemoteError, seconds))."""

from __future__ import annotations

import time

from helpers.fakeapi import FAKE_KEY
from scoring.remote import Remote, RemoteError

MSG = [{"role": "user", "content": "hello"}]


def remote(fakeapi, **kw) -> Remote:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("backoff", 0.1)
    return Remote(fakeapi.url, api_key=FAKE_KEY, seed=0, **kw)


def timed(fn):
    t = time.monotonic()
    try:
        return fn(), time.monotonic() - t
    except RemoteError as e:
        return e, time.monotonic() - t
