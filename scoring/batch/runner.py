"""Scoring batches of files for the CLI: resume from the score cache, read verdicts that
Saiten Save Image wrote into PNGs, keep out of a running ComfyUI's way.

`Runner.batch(paths)` returns one report entry per file, its verdict decided by the run's
pass rule. Per image and per source it takes the cards from the cache when their key
matches (`resume_cache.key_for`), runs the source only on the images still missing them,
and stores what it made. Before sources load (and between batches) it keeps out of the way
of the ComfyUI beside it (`comfy_neighbour.Beside`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cards import AXES, ScoreCard, Sheet, Verdict, merge_sheets
from ..core.images import Frame, Frames, Image
from ..core.rubric import Rubric
from ..ensemble.aggregate import AggregateSettings, combine_sheet
from ..ensemble.calibrate import Calibration, apply_calibrations
from ..ensemble.select import Rule, decide
from ..report import Entry, read_png_scores, thumbnail
from ..report.comfy_meta import read_meta
from ..sources import Cancelled, ScoreContext, Source, Unavailable
from .comfy_neighbour import Beside
from .resume_cache import ScoreCache, cacheable, file_hash

Work = tuple[int, str, Image, list[list[ScoreCard] | None]]
"""An image to score: its entry's index, its cache key (content hash, `#k` for frame k of
an animated file), pixels, and per source the cards from the cache (None: it must run)."""


@dataclass
class Planned:
    """A source of the run and its cache key (None: never cached, e.g. `Unavailable`)."""

    source: Source
    key: str | None


@dataclass
class Counts:
    """What the run did, for the closing line and the report."""

    scored: int = 0      # images that ran at least one source
    reused: int = 0      # images whose every card came from the cache
    from_png: int = 0    # verdicts read back from Saiten Save Image PNGs
    unreadable: int = 0


NOT_SCORED = "not scored"
"""The placeholder verdict of a frame waiting for the sources."""

MAX_BATCH_BYTES = 512 << 20
"""Decoded pixels (float32) a batch holds before its sources run: with frames decoded one
at a time, what bounds a run's memory whatever the files claim."""


def _sha(digest: str, name: str) -> str:
    """The id of a row that is part of a file (frames), from the file's digest."""
    return hashlib.sha256(f"{digest}#{name.rpartition('#')[2]}".encode()).hexdigest()


def unreadable(reason: str) -> Verdict:
    return Verdict(axes=dict.fromkeys(AXES), confidence=0.0, used=[], dropped={}, cards=[],
                   unscored=reason)


def _png_verdict(path: Path, labels: set[str]) -> Verdict | None:
    """The verdict Saiten Save Image wrote into `path`, when its sources are `labels`."""
    if path.suffix.lower() != ".png":
        return None
    try:
        saved = read_png_scores(path)
        if not saved or not isinstance(saved.get("sources"), dict):
            return None
        if {k.split("#")[0] for k in saved["sources"]} != labels:
            return None
        return Verdict.from_dict(saved)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return None


@dataclass
class Runner:
    """The sources of a run (`plans`), how their cards combine (`settings`, `calibrations`)
    and what passes (`rule`); `cache` is the resume cache, `beside` the ComfyUI manners."""

    plans: list[Planned]
    settings: AggregateSettings
    rubric: Rubric = field(default_factory=Rubric.default)
    calibrations: Sequence[Calibration] = ()
    repeats: int = 1
    rule: Rule = field(default_factory=Rule)
    cache: ScoreCache | None = None
    rescore: bool = False
    max_bytes: int = MAX_BATCH_BYTES
    beside: Beside = field(default_factory=lambda: Beside(None))
    counts: Counts = field(default_factory=Counts)

    # -- scoring ------------------------------------------------------------------------
    def _run_source(self, plan: Planned, images: list[Image], prior: Sheet) -> Sheet:
        """The source's sheet; a source that breaks its contract abstains instead."""
        ctx = ScoreContext(repeats=self.repeats, prior=prior, rubric=self.rubric)
        try:
            sheet = list(plan.source.score(images, ctx))
            if len(sheet) != len(images):
                raise RuntimeError(f"{len(sheet)} results for {len(images)} images")
            return sheet
        except Cancelled:
            raise
        except Exception as e:
            src = plan.source
            return Unavailable(src.name, f"failed: {type(e).__name__}: {e}", kind=src.kind,
                               provides=tuple(src.provides), label=src.label).score(images)

    def _cached(self, key: str) -> list[list[ScoreCard] | None]:
        """Per source, its cached cards for the image `key` (None: it must run)."""
        return [None if (self.rescore or self.cache is None or p.key is None)
                else self.cache.cards(key, p.key) for p in self.plans]

    def batch(self, paths: Sequence[Path]) -> list[Entry]:
        """One entry per file in order — one per frame of an animated file, named `file#k`
        (as LoadImage reads it), and one `file#a-b` for the frames past MAX_FRAMES;
        unreadable files, and files cut short, become unscored entries with the reason.
        Frames are decoded one at a time, and the sources run whenever the decoded frames
        waiting reach `max_bytes` (so a batch is bounded by memory, not only by count)."""
        self.beside.between_batches(self.unload)
        labels = {p.source.label for p in self.plans}
        entries: list[Entry] = []
        work: list[Work] = []
        for path in paths:
            try:
                digest = file_hash(path)
            except OSError as e:
                entries.append(Entry(path.name, unreadable(f"{path.name}: cannot read ({e})")))
                continue
            stored = self.cache.image(digest) if self.cache else None
            cards = self._cached(digest)
            if stored and all(c is not None for c in cards):  # no need even to decode it
                entries.append(self._reused(path.name, cards, *stored, digest, str(path)))
                continue
            meta = stored[1] if stored else read_meta(path)
            done, total = 0, 1  # frames with an entry, frames in the file
            try:
                frames = Frames(path)
                total = frames.total
                one = frames.total == 1
                saved = None if self.rescore or not one else _png_verdict(path, labels)
                for frame in frames:
                    name, key = ((path.name, digest) if one else
                                 (f"{path.name}#{frame.index}", f"{digest}#{frame.index}"))
                    entry = self._frame(name, key, path, digest, stored, cards, frame, meta,
                                        saved)
                    entries.append(entry)
                    done += 1
                    if entry.verdict.unscored == NOT_SCORED:
                        work.append((len(entries) - 1, key, frame.image,
                                     cards if key == digest else self._cached(key)))
                        if sum(w[2].nbytes for w in work) >= self.max_bytes:
                            self._score(work, entries)
                            work = []
                    del frame
                if frames.skipped:
                    last = f"{path.name}#{frames.count}-{frames.total - 1}"
                    entries.append(Entry(last, unreadable(frames.skipped), meta=meta,
                                         sha256=_sha(digest, last)))
            except Exception as e:  # BadImage, or anything else PIL throws at a broken file
                msg = str(e) if path.name in str(e) else f"{path.name}: cannot read image ({e})"
                rest = path.name if not done else f"{path.name}#{done}-{max(done, total - 1)}"
                entries.append(Entry(rest, unreadable(msg), meta=meta,
                                     sha256=_sha(digest, rest) if done else digest,
                                     path="" if done else str(path)))
                self.counts.unreadable += 1
        if work:
            self._score(work, entries)
        return entries

    def _frame(self, name: str, key: str, path: Path, digest: str, stored: Any,
               cards: list[list[ScoreCard] | None], frame: Frame, meta: dict[str, Any],
               saved: Verdict | None) -> Entry:
        """The entry of one frame: reused, read from its PNG, unscored when it decoded
        only in part, else a placeholder (NOT_SCORED) the sources will fill in."""
        sha = digest if key == digest else hashlib.sha256(key.encode()).hexdigest()
        file = str(path) if key == digest else ""  # a frame: its thumbnail only
        known = stored if key == digest else self.cache.image(key) if self.cache else None
        thumb = known[0] if known and known[0] else thumbnail(frame.image)
        if self.cache and not known:
            self.cache.put_image(key, thumb, meta)
        if frame.partial:
            self.counts.unreadable += 1
            return Entry(name, unreadable(frame.partial), thumb, meta, sha256=sha, path=file)
        if saved is not None:
            self.counts.from_png += 1
            return Entry(name, self._decide(saved), thumb, meta, origin="png", sha256=sha,
                         path=file)
        cards = cards if key == digest else self._cached(key)
        if all(c is not None for c in cards):
            return self._reused(name, cards, thumb, meta, sha, file)
        return Entry(name, unreadable(NOT_SCORED), thumb, meta, sha256=sha, path=file)

    def _reused(self, name: str, cards: list[list[ScoreCard] | None], thumb: bytes | None,
                meta: dict[str, Any], sha256: str, path: str) -> Entry:
        self.counts.reused += 1
        verdict = self._combine([[c for cs in cards for c in cs or ()]])[0]
        return Entry(name, verdict, thumb, meta, origin="cache", sha256=sha256, path=path)

    def _score(self, work: list[Work], entries: list[Entry]) -> None:
        """Run each source on the images missing its cards, cache them, combine."""
        per_source = [[cards[j] for *_, cards in work] for j in range(len(self.plans))]
        ran = [False] * len(work)  # a source with a cache key ran on the image
        sheet: Sheet = [[] for _ in work]
        for j, plan in enumerate(self.plans):
            todo = [k for k in range(len(work)) if per_source[j][k] is None]
            if todo:
                if plan.key is not None:  # a source that loads a model (not a stand-in)
                    self.beside.make_room()
                fresh = self._run_source(plan, [work[k][2] for k in todo],
                                         [sheet[k] for k in todo])
                for k, cards in zip(todo, fresh, strict=True):
                    per_source[j][k] = list(cards)
                    ran[k] = ran[k] or plan.key is not None
                if self.cache is not None and plan.key is not None:
                    self.cache.put_cards((work[k][1], plan.key, per_source[j][k])
                                         for k in todo if cacheable(per_source[j][k]))
            sheet = merge_sheets(sheet, [per_source[j][k] or [] for k in range(len(work))])
        for k, ((i, *_), verdict) in enumerate(zip(work, self._combine(sheet), strict=True)):
            old = entries[i]
            origin = "" if ran[k] else "cache"
            entries[i] = dataclasses.replace(old, verdict=verdict, origin=origin)
            if ran[k]:
                self.counts.scored += 1
            else:  # only stand-ins ran (a source that could not start)
                self.counts.reused += 1

    def _combine(self, sheet: Sheet) -> list[Verdict]:
        if self.calibrations:
            sheet = [apply_calibrations(cards, self.calibrations) for cards in sheet]
        return [self._decide(v) for v in combine_sheet(sheet, self.settings)]

    def _decide(self, verdict: Verdict) -> Verdict:
        """The verdict under this run's pass rule (a verdict read from a PNG included: the
        report says what this run's rule decides)."""
        return dataclasses.replace(verdict, decision=decide([verdict], self.rule)[0])

    def unload(self) -> None:
        for p in self.plans:
            p.source.unload()


def run_counts(counts: Counts, beside: Beside, total: int) -> dict[str, int]:
    """How much of the run was new work, as numbers (the report page words them itself)."""
    return {"images": total, "scored": counts.scored, "reused": counts.reused,
            "from_png": counts.from_png, "unreadable": counts.unreadable,
            "frees": beside.frees, "waited": round(beside.waited)}


def closing_line(counts: Counts, beside: Beside, total: int) -> str:
    """How much of the run was new work: "120 images: 3 scored, 117 reused from the cache"."""
    n = run_counts(counts, beside, total)
    parts = [f"{n['scored']} scored", f"{n['reused']} reused from the cache"]
    if n["from_png"]:
        parts.append(f"{n['from_png']} read from Saiten PNG metadata")
    if n["unreadable"]:
        parts.append(f"{n['unreadable']} unreadable")
    if n["frees"]:
        parts.append(f"ComfyUI freed its memory {n['frees']}×")
    if n["waited"] >= 1:
        parts.append(f"waited {n['waited']}s for ComfyUI")
    return f"{total} images: " + ", ".join(parts)
