"""The persistent score cache of a report folder (`scores.sqlite`), so a run resumes.

One row per (image content, source configuration): the cards that source made for that
image. The source key (`source_key`) covers the source's identity (name and build options),
its run options, the rubric and the keys of the sources before it (the judge and VLM
prompts read their cards), so changing any of them rescores exactly what it affects.
Aggregation is not cached: it is cheap and recomputed from the cards, so `--k` or
`--weights` changes need no rescoring.

Every write commits at once (sqlite journal), so a crash or Ctrl-C loses at most the batch
in hand. Thumbnails and ComfyUI metadata are kept per image so a resumed run need not decode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.atomic import as_write_error
from ..core.cards import ScoreCard
from ..sources import Source
from ..sources.handles import HOW_NOT_WHAT, canon, identity, versioned

FILE_NAME = "scores.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    image TEXT NOT NULL, source TEXT NOT NULL, label TEXT NOT NULL,
    cards TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (image, source));
CREATE TABLE IF NOT EXISTS images (
    image TEXT PRIMARY KEY, thumb BLOB, meta TEXT NOT NULL, created REAL NOT NULL);
"""


def file_hash(path: str | Path) -> str:
    """sha256 of the file's bytes (what the image is, whatever its name)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_key(identity: str, run: Mapping[str, Any], rubric: str,
               before: Sequence[str] = ()) -> str:
    """The cache key of a source configuration: its identity (`sources.handles.identity`,
    results only), its run options, the rubric text, and the keys of the sources that ran
    before it in the same pipeline."""
    material = json.dumps({"source": identity, "run": canon(run),
                           "rubric": hashlib.sha256(rubric.encode()).hexdigest(),
                           "before": list(before)}, sort_keys=True)
    name = identity.partition(":")[0]
    return name + ":" + hashlib.sha256(material.encode()).hexdigest()[:32]


def key_for(source: Source, repeats: int, rubric: str, before: Sequence[str] = ()) -> str:
    """`source_key` of a created source: its identity from the options it was built with,
    its resolved run options (label and weight filled in) and the run's repeats."""
    run = {k: versioned(v) for k, v in dataclasses.asdict(source.options()).items()
           if k not in HOW_NOT_WHAT}
    return source_key(identity(source.name, source.build, results_only=True),
                      {**run, "repeats": repeats}, rubric, before)


def cacheable(cards: Sequence[ScoreCard]) -> bool:
    """Keep a source's cards only when at least one scored: an abstention may be a missing
    model or a dead server, which the next run should retry."""
    return any(c.ok for c in cards)


class ScoreCache:
    """`scores.sqlite` in a report folder. Use as a context manager or call `close()`. A
    folder that cannot take a write (full, read-only) is a `WriteError` naming it and its
    free space — the run ends with that one line; sqlite keeps what was committed."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / FILE_NAME
        self.db: sqlite3.Connection | None = None
        with self._writing():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(_SCHEMA)
            self.db.commit()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as e:
            err = as_write_error(e, self.path)
            if err is e:
                raise
            if self.db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.db.rollback()
            raise err from e

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    # -- cards --------------------------------------------------------------------------
    def cards(self, image: str, source: str) -> list[ScoreCard] | None:
        row = self.db.execute("SELECT cards FROM cards WHERE image=? AND source=?",
                              (image, source)).fetchone()
        if row is None:
            return None
        try:
            return [ScoreCard.from_dict(d) for d in json.loads(row[0])]
        except (ValueError, TypeError, KeyError):
            return None  # a row from an incompatible version: score again

    def put_cards(self, rows: Iterable[tuple[str, str, Sequence[ScoreCard]]]) -> int:
        """Store (image, source key, cards) rows in one transaction; returns how many
        were cacheable and stored."""
        now = time.time()
        data = [(image, source, cards[0].source if cards else source,
                 json.dumps([c.to_dict() for c in cards], ensure_ascii=False), now)
                for image, source, cards in rows if cacheable(cards)]
        with self._writing(), self.db:
            self.db.executemany("INSERT OR REPLACE INTO cards VALUES (?,?,?,?,?)", data)
        return len(data)

    # -- per image ----------------------------------------------------------------------
    def image(self, image: str) -> tuple[bytes | None, dict[str, Any]] | None:
        """(thumbnail, ComfyUI metadata) stored for an image, or None."""
        row = self.db.execute("SELECT thumb, meta FROM images WHERE image=?",
                              (image,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def put_image(self, image: str, thumb: bytes | None, meta: Mapping[str, Any]) -> None:
        with self._writing(), self.db:
            self.db.execute("INSERT OR REPLACE INTO images VALUES (?,?,?,?)",
                            (image, thumb, json.dumps(dict(meta), ensure_ascii=False),
                             time.time()))

    def stats(self) -> dict[str, int]:
        """Rows held: {"cards": n, "images": n}."""
        return {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("cards", "images")}

    def first_scored(self) -> float | None:
        """When the earliest cards were stored (epoch seconds), or None."""
        return self.db.execute("SELECT MIN(created) FROM cards").fetchone()[0]
