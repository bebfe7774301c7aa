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
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...core.cards import ScoreCard, Sheet
from ...core.images import load_frames
from ...host.memory import MemoryPolicy
from ...remote import breaker
from ...report import thumbnail
from ...report.comfy_meta import read_meta
from ...sources import Source, Unavailable, create, unavailable
from ..memory import CliMemory
from ..runner import Runner, png_verdict, run_source, unreadable
from .ledger import SharedBreaker, SharedBudget, SharedCache

Batch = dict[str, Any]
"""A Ray Data batch in the "numpy" format: column name → array (object arrays for text)."""

FRAME_COLUMNS = ("order", "name", "key", "pixels", "thumb", "meta", "cards", "ran", "saved",
                 "error")
"""One frame: `cards` is JSON, per source of the run, its cards (null: it must run);
`ran` which sources made theirs here; `saved` a verdict read from a Saiten PNG (JSON, or "");
`error` why the file could not be decoded ("")."""

RESULT_COLUMNS = ("order", "name", "key", "thumb", "meta", "cards", "ran", "saved", "error",
                  "verdict")
"""What comes back to the driver: a frame without its pixels, with its verdict (JSON)."""


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
def _frame(file: dict[str, Any], **kw: Any) -> dict[str, Any]:
    row = {"order": file["order"], "name": file["name"], "key": file["digest"],
           "pixels": np.zeros((1, 1, 3), np.float32), "thumb": b"", "meta": file["meta"] or "{}",
           "cards": "[]", "ran": "[]", "saved": "", "error": ""}
    return {**row, **kw}


def decode(batch: Batch, sources: int, labels: frozenset[str], rescore: bool) -> Batch:
    """Files → frames (one row per frame of an animated file, named `file#k`), as the Runner
    reads them: pixels, thumbnail, metadata, a verdict saved in a Saiten PNG, and the cards
    the cache holds for each frame's key. A file that changed since the driver hashed it,
    or cannot be decoded, becomes one row with `error`."""
    out: list[dict[str, Any]] = []
    for file in batch_rows(batch):
        path, name = Path(file["path"]), str(file["name"])
        try:
            data = path.read_bytes()
        except OSError as e:
            out.append(_frame(file, error=f"{name}: cannot read on this node ({e})"))
            continue
        if hashlib.sha256(data).hexdigest() != file["digest"]:
            out.append(_frame(file, error=f"{name}: changed while the run was reading it"))
            continue
        meta = file["meta"] or json.dumps(read_meta(path), ensure_ascii=False)
        try:
            frames = load_frames(path)
        except Exception as e:  # BadImage, or anything else PIL throws at a broken file
            msg = str(e) if name in str(e) else f"{name}: cannot read image ({e})"
            out.append(_frame(file, meta=meta, error=msg))
            continue
        saved = None if rescore or len(frames) > 1 else png_verdict(path, set(labels))
        cached = json.loads(file["cached"])
        for k, pixels in enumerate(frames):
            frame, key = ((name, file["digest"]) if len(frames) == 1
                          else (f"{name}#{k}", f"{file['digest']}#{k}"))
            out.append(_frame(file, name=frame, key=key, pixels=pixels, meta=meta,
                              thumb=thumbnail(pixels),
                              cards=json.dumps(cached.get(key) or [None] * sources),
                              ran=json.dumps([False] * sources),
                              saved="" if saved is None else json.dumps(saved.to_dict())))
    return _batch(out, FRAME_COLUMNS)


# -- sources ------------------------------------------------------------------------------
class SourceStage:
    """Source `index` of the run over a batch of frames, in an actor that builds it once:
    run on the frames still missing its cards, with the cards of the sources before it as
    `prior`, as `Runner.batch` runs it. `run` is the run's bare Runner (`Runner.bare`).

    A remote source gets the run's `ledger`: its servers' circuit breakers, its answer cache
    and (for `budget`, its label) its budget are the run's, shared by every worker. The
    `last` stage also combines each frame's verdict and leaves the pixels behind."""

    def __init__(self, index: int, recipe: Recipe, run: Runner, *, last: bool = False,
                 ledger: Any = None, budget: str = "") -> None:
        self.index, self.run, self.last = index, run, last
        if ledger is not None:  # this process is this actor's alone
            breaker.share(lambda origin: SharedBreaker(ledger, origin))
        self.budget = SharedBudget(ledger=ledger, name=budget) if ledger and budget else None
        self.source = recipe.build(CliMemory(), ledger)

    def __call__(self, batch: Batch) -> Batch:
        rows = batch_rows(batch)
        for r in rows:
            r["cards"], r["ran"] = load_cards(r["cards"]), json.loads(r["ran"])
        todo = [r for r in rows if not r["error"] and not r["saved"]
                and r["cards"][self.index] is None]
        if todo:
            prior: Sheet = [[c for cs in r["cards"][:self.index] for c in cs or ()]
                            for r in todo]
            images = [np.array(r["pixels"], np.float32) for r in todo]  # writable, as loaded
            got = run_source(self.source, images, self.run.context(prior, self.budget))
            for r, cards in zip(todo, got, strict=True):
                r["cards"][self.index], r["ran"][self.index] = list(cards), True
        for r in rows:
            if self.last:
                r["verdict"] = self._verdict(r)
            r["cards"], r["ran"] = dump_cards(r["cards"]), json.dumps(r["ran"])
        return _batch(rows, RESULT_COLUMNS if self.last else FRAME_COLUMNS)

    def _verdict(self, row: dict[str, Any]) -> str:
        """The frame's verdict as JSON ("" for one saved in a PNG: the driver decides it)."""
        if row["saved"]:
            return ""
        if row["error"]:
            verdict = unreadable(row["error"])
        else:
            verdict = self.run.combine([[c for cs in row["cards"] for c in cs or ()]])[0]
        return json.dumps(verdict.to_dict(), ensure_ascii=False)
