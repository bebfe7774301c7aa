"""What runs on the Ray workers: files decoded into frames, and each source in its stage,
an actor that builds it once; the last stage also combines the verdicts. Nothing here
imports ray: a worker scores and combines with the one-process Runner's own pieces.

A row is one file before `decode` and one frame after it. Cards, verdicts and metadata travel
as JSON text, pixels as float32 arrays; a source travels as its `Recipe` (registry name and
options), never as a loaded model, and never with a key: a remote source looks its key up on
the node that builds it, from that node's own configuration (`scoring.remote.keys`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...core.cards import ScoreCard, Sheet
from ...host.memory import MemoryPolicy
from ...remote import breaker
from ...report import thumbnail
from ...report.comfy_meta import read_meta
from ...sources import Source, Unavailable, create, unavailable
from ...sources.onnx import session as onnx_session
from ..memory import CliMemory
from ..runner import Part, Runner, parts, run_source
from .ledger import SharedBreaker, SharedBudget, SharedCache

Batch = dict[str, Any]
"""A Ray Data batch in the "numpy" format: column name → array (object arrays for text)."""

FRAME_COLUMNS = ("order", "name", "key", "sha256", "path", "meta", "error", "broken", "pixels",
                 "partial", "thumb", "saved", "cards", "ran")
"""One row of the report (a `runner.Part`) and what the stages add: `pixels` and
`partial` (why the frame decoded only in part) of a frame, its thumbnail, a verdict read from
a Saiten PNG (JSON, or ""), `cards` as JSON, per source of the run, its cards (null: it must
run), and `ran`: which sources made theirs here."""

RESULT_COLUMNS = (*(c for c in FRAME_COLUMNS if c != "pixels"), "verdict")
"""What comes back to the driver: a row without its pixels, with its verdict (JSON)."""


@dataclass(frozen=True)
class Recipe:
    """How a worker builds a source: its registry name and options (build options and the
    run options it was created with), or why it cannot run (`why`: an `Unavailable`)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    label: str = ""

    @classmethod
    def of(cls, source: Source) -> Recipe:
        """How to build again a source the driver created."""
        if isinstance(source, Unavailable):
            return cls(source.source_name, why=source.why, label=source.label)
        given = {f.name: getattr(source.defaults, f.name)
                 for f in dataclasses.fields(source.defaults)
                 if getattr(source.defaults, f.name) != f.default}
        return cls(source.name, {**source.build, **given}, label=source.label)

    def build(self, memory: MemoryPolicy | None = None, ledger: Any = None) -> Source:
        """The source (not loaded); one that fails to build abstains with the reason. With
        the run's `ledger`, a remote source's answer cache (its `cache` option, a path on the
        driver's machine) is the run's."""
        if self.why:
            return unavailable(self.name, self.why, label=self.label)
        options = dict(self.options)
        if ledger is not None and options.get("cache"):
            options["cache"] = SharedCache(ledger, str(options["cache"]))
        try:
            return create(self.name, memory=memory, **options)
        except Exception as e:
            return unavailable(self.name, f"cannot start on this node: {type(e).__name__}: "
                               f"{e}", label=self.label)


# -- columns ------------------------------------------------------------------------------
def dump_cards(per_source: Sequence[Sequence[ScoreCard] | None]) -> str:
    return json.dumps([None if cs is None else [c.to_dict() for c in cs] for cs in per_source],
                      ensure_ascii=False)


def load_cards(text: str) -> list[list[ScoreCard] | None]:
    return [None if cs is None else [ScoreCard.from_dict(d) for d in cs]
            for cs in json.loads(text)]


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def batch_rows(batch: Batch) -> list[dict[str, Any]]:
    n = len(next(iter(batch.values()))) if batch else 0
    return [{c: v[i] for c, v in batch.items()} for i in range(n)]


def _batch(rows: list[dict[str, Any]], columns: Sequence[str]) -> Batch:
    """Rows as a batch; `pixels` as a list of arrays (their shapes may differ)."""
    return {c: ([r[c] for r in rows] if c == "pixels" else _objects([r[c] for r in rows]))
            for c in columns}


# -- decoding -----------------------------------------------------------------------------
def signature(path: Path) -> list[int]:
    """[size, mtime in ns] of a file: what tells a worker it reads what the driver hashed."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _row(part: Part, order: int, meta: str, cached: dict[str, Any], sources: int) -> dict:
    frame = part.frame
    return {"order": order, "name": part.name, "key": part.key, "sha256": part.sha256,
            "path": part.path, "meta": meta, "error": part.error, "broken": part.broken,
            "pixels": frame.image if frame else np.zeros((1, 1, 3), np.float32),
            "partial": frame.partial if frame else "",
            "thumb": thumbnail(frame.image) if frame else b"",
            "saved": "" if part.saved is None else json.dumps(part.saved.to_dict()),
            "cards": json.dumps(cached.get(part.key) or [None] * sources),
            "ran": json.dumps([False] * sources)}


def decode(batch: Batch, sources: int, labels: frozenset[str] | None,
           max_bytes: int) -> Iterator[Batch]:
    """Files → rows, as the Runner reads them (`runner.parts`: a row per frame, one for
    the frames past the limit or for the rest of a broken file), with each frame's
    thumbnail and the cards the cache holds for its key. A file whose size or time changed
    since the driver hashed it (or that this node cannot read) is one unscored row. Frames
    decode one at a time, and a batch goes on whenever its pixels reach `max_bytes`."""
    rows: list[dict[str, Any]] = []
    for file in batch_rows(batch):
        path, name, digest = Path(file["path"]), str(file["name"]), str(file["digest"])
        try:
            why = "" if signature(path) == json.loads(file["stat"]) else \
                f"{name}: changed while the run was reading it"
        except OSError as e:
            why = f"{name}: cannot read on this node ({e})"
        meta = file["meta"] or json.dumps(read_meta(path), ensure_ascii=False)
        found = ([Part(name, "", digest, str(path), error=why)] if why
                 else parts(path, digest, None if labels is None else set(labels)))
        for part in found:
            rows.append(_row(part, int(file["order"]), meta, json.loads(file["cached"]),
                             sources))
            if sum(r["pixels"].nbytes for r in rows) >= max_bytes:
                yield _batch(rows, FRAME_COLUMNS)
                rows = []
    if rows:
        yield _batch(rows, FRAME_COLUMNS)


# -- sources ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """Source `index` of the run, built from `recipe`; `budget` names its budget in the
    ledger (a remote source with limits), "" for none."""

    index: int
    recipe: Recipe
    budget: str = ""


class SourceStage:
    """Some of the run's sources (`steps`: one with a model or a server, and light ones that
    ride along, e.g. the technical check) over a batch of frames, in an actor that builds
    each once: each runs on the frames still missing its cards, with the cards of the sources
    before it as `prior`, as `Runner.batch` runs it. `run` is the run's bare Runner.

    A remote source gets the run's `ledger`: its servers' circuit breakers, its answer cache
    and its budget are the run's, shared by every worker. On a CPU an ONNX model computes
    with `threads` threads (its share of the node's cores). The `last` stage also combines
    each frame's verdict and leaves the pixels behind."""

    def __init__(self, steps: Sequence[Step], run: Runner, *, last: bool = False,
                 ledger: Any = None, threads: int = 0) -> None:
        self.steps, self.run, self.last = list(steps), run, last
        onnx_session.use_threads(threads)  # this process is this actor's alone
        if ledger is not None:
            breaker.share(lambda origin: SharedBreaker(ledger, origin))
        self.sources = [s.recipe.build(CliMemory(), ledger) for s in self.steps]
        self.budgets = [SharedBudget(ledger=ledger, name=s.budget) if ledger and s.budget
                        else None for s in self.steps]

    def __call__(self, batch: Batch) -> Batch:
        rows = batch_rows(batch)
        for r in rows:
            r["cards"], r["ran"] = load_cards(r["cards"]), json.loads(r["ran"])
        images: dict[int, np.ndarray] = {}
        for step, source, budget in zip(self.steps, self.sources, self.budgets, strict=True):
            j = step.index
            todo = [i for i, r in enumerate(rows) if _scored(r) and r["cards"][j] is None]
            if not todo:
                continue
            for i in todo:  # writable, as loaded
                images.setdefault(i, np.array(rows[i]["pixels"], np.float32))
            prior: Sheet = [[c for cs in rows[i]["cards"][:j] for c in cs or ()] for i in todo]
            got = run_source(source, [images[i] for i in todo], self.run.context(prior, budget))
            for i, cards in zip(todo, got, strict=True):
                rows[i]["cards"][j], rows[i]["ran"][j] = list(cards), True
        for r in rows:
            if self.last:
                r["verdict"] = self._verdict(r)
            r["cards"], r["ran"] = dump_cards(r["cards"]), json.dumps(r["ran"])
        return _batch(rows, RESULT_COLUMNS if self.last else FRAME_COLUMNS)

    def _verdict(self, row: dict[str, Any]) -> str:
        """The frame's verdict as JSON ("" for a row the sources do not score: the driver
        makes its entry as one process does)."""
        if not _scored(row):
            return ""
        verdict = self.run.combine([[c for cs in row["cards"] for c in cs or ()]])[0]
        return json.dumps(verdict.to_dict(), ensure_ascii=False)


def _scored(row: dict[str, Any]) -> bool:
    """Whether the sources score this row: a frame decoded whole, not read from a PNG."""
    return not (row["error"] or row["partial"] or row["saved"])
