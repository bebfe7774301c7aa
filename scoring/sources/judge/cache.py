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

log = logging.getLogger("saiten")


class Cache:
    """A persistent answer cache: sha256(model, system, user, temperature, sample) → text."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self._db() as db:
                    db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, "
                               "model TEXT, answer TEXT, usage TEXT, created REAL)")
            except sqlite3.Error as e:
                log.warning("saiten: judge cache %s unusable (%s); not caching", self.path, e)
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
                row = db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
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
        except sqlite3.Error as e:
            log.warning("saiten: judge cache %s not written (%s)", self.path, e)
