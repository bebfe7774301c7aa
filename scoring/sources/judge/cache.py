"""The judge's persistent answer cache (sqlite): an identical prompt is answered with no call."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ...core.atomic import as_write_error
from ...remote.answer import MAX_CONTENT

log = logging.getLogger("saiten")


class Cache:
    """A persistent answer cache: sha256(model, system, user, temperature, sample) → text.

    A cache is an optimisation: a folder that is read-only or full never fails a run — the
    cache turns itself off and says why in `problem`. An answer longer than a call reads
    (`MAX_CONTENT`, e.g. cached by an older version) is not returned."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self.problem = ""
        if self.path:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self._db() as db:
                    db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, "
                               "model TEXT, answer TEXT, usage TEXT, created REAL)")
            except (sqlite3.Error, OSError) as e:
                self._off(e)

    def _off(self, e: BaseException, what: str = "unusable") -> None:
        why = as_write_error(e, self.path or Path("."))
        self.problem = f"judge cache {self.path} {what} ({why}); not caching"
        log.warning("saiten: %s", self.problem)
        self.path = None

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    @staticmethod
    def key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False)
                              .encode()).hexdigest()

    def get(self, key: str) -> str | None:
        if not self.path:
            return None
        try:
            with self._db() as db:
                row = db.execute("SELECT answer FROM answers WHERE key = ? AND "
                                 "length(answer) <= ?", (key, MAX_CONTENT)).fetchone()
        except sqlite3.Error as e:  # a cache is an optimisation: never fail a run for it
            log.warning("saiten: judge cache %s unreadable (%s)", self.path, e)
            return None
        return row[0] if row else None

    def put(self, key: str, model: str, answer: str, usage: dict[str, Any]) -> None:
        if not self.path:
            return
        try:
            with self._db() as db:
                db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                           (key, model, answer, json.dumps(usage), time.time()))
        except (sqlite3.Error, OSError) as e:
            self._off(e, "not written")  # full or read-only: stop trying for this run
