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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cards import AXES, ScoreCard, Sheet, Verdict, merge_sheets
from ..core.images import Frame, Frames, Image
from ..core.rubric import Rubric
from ..ensemble.aggregate import AggregateSettings, combine_sheet
from ..ensemble.calibrate import Calibration, apply_calibrations
from ..ensemble.select import Rule, decide
from ..remote import Budget
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


def png_verdict(path: Path, labels: set[str]) -> Verdict | None:
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


def run_source(source: Source, images: list[Image], ctx: ScoreContext) -> Sheet:
    """The source's sheet for `images`; a source that breaks its contract abstains instead
    (both engines run every source through this)."""
    try:
        sheet = list(source.score(images, ctx))
        if len(sheet) != len(images):
            raise RuntimeError(f"{len(sheet)} results for {len(images)} images")
        return sheet
    except Cancelled:
        raise
    except Exception as e:
        return Unavailable(source.name, f"failed: {type(e).__name__}: {e}", kind=source.kind,
                           provides=tuple(source.provides), label=source.label).score(images)


@dataclass
class Lookup:
    """What the cache holds for a file that must be decoded: its content hash, its stored
    (thumbnail, metadata) if any, and per source its cached cards (None: it must run)."""

    digest: str
    stored: tuple[bytes | None, dict[str, Any]] | None
    cards: list[list[ScoreCard] | None]


@dataclass
class Part:
    """One report row of a file, as it decodes: a frame (`frame`; its cache `key`), or the
    rest of the file that cannot be scored (`error`; `broken`: it counts as unreadable)."""

    name: str
    key: str
    sha256: str
    path: str
    frame: Frame | None = None
    saved: Verdict | None = None
    error: str = ""
    broken: bool = False


def parts(path: Path, digest: str, labels: set[str] | None) -> Iterator[Part]:
    """The rows of a file as its frames decode one at a time (`file#k` for an animated
    file; a Saiten PNG's verdict with the frame when its sources are `labels`), then one for
    the frames past MAX_FRAMES, or, where it broke, one for the rest. Both engines read
    files through this: the Ray engine on its workers."""
    done, total = 0, 1  # frames with a row, frames in the file
    try:
        frames = Frames(path)
        total = frames.total
        one = frames.total == 1
        saved = png_verdict(path, labels) if one and labels is not None else None
        for frame in frames:
            if one:
                yield Part(path.name, digest, digest, str(path), frame, saved)
            else:
                key = f"{digest}#{frame.index}"
                yield Part(f"{path.name}#{frame.index}", key,
                           hashlib.sha256(key.encode()).hexdigest(), "", frame)
            done += 1
        if frames.skipped:
            last = f"{path.name}#{frames.count}-{frames.total - 1}"
            yield Part(last, "", _sha(digest, last), "", error=frames.skipped)
    except Exception as e:  # BadImage, or anything else PIL throws at a broken file
        msg = str(e) if path.name in str(e) else f"{path.name}: cannot read image ({e})"
        rest = path.name if not done else f"{path.name}#{done}-{max(done, total - 1)}"
        yield Part(rest, "", _sha(digest, rest) if done else digest, "" if done else str(path),
                   error=msg, broken=True)


Done = tuple[str, list[list[ScoreCard] | None], list[bool]]
"""An image the sources went over: its cache key, per source its cards, and per source
whether it ran now (rather than its cards coming from the cache)."""


@dataclass
class Runner:
    """The sources of a run (`plans`), how their cards combine (`settings`, `calibrations`)
    and what passes (`rule`); `cache` is the resume cache, `beside` the ComfyUI manners.

    The one-process engine is `batch`; the pieces it is made of (`lookup`, `parts`,
    `frame`, `context`, `store`, `combine`) are what the Ray engine (`ray_engine`) runs too."""

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
    budgets: dict[int, Budget | None] = field(default_factory=dict)
    """Source j's budget for the whole run (a judge's `max_calls` / `max_usd`)."""

    # -- the pieces both engines share --------------------------------------------------
    def budget(self, j: int) -> Budget | None:
        """Source j's budget for the whole run (made from its options on first use)."""
        if j not in self.budgets:
            source = self.plans[j].source
            self.budgets[j] = source.budget(source.options())
        return self.budgets[j]

    def context(self, prior: Sheet, budget: Budget | None = None) -> ScoreContext:
        """A source's call context: the run's rubric and repeats, the cards the sources
        before it made (`prior`) and its budget for the run."""
        return ScoreContext(repeats=self.repeats, prior=prior, rubric=self.rubric,
                            budget=budget)

    def bare(self) -> Runner:
        """This run's settings alone, without sources, cache or ComfyUI: what a Ray worker
        needs to score and combine as this runner does."""
        return Runner([], self.settings, self.rubric, self.calibrations, self.repeats,
                      self.rule, rescore=self.rescore)

    @property
    def labels(self) -> set[str] | None:
        """The run's source labels, for reading back a Saiten PNG's verdict (None: never,
        on `--rescore`)."""
        return None if self.rescore else {p.source.label for p in self.plans}

    def cached(self, key: str) -> list[list[ScoreCard] | None]:
        """Per source, its cached cards for the image `key` (None: it must run)."""
        return [None if (self.rescore or self.cache is None or p.key is None)
                else self.cache.cards(key, p.key) for p in self.plans]

    def lookup(self, path: Path, digest: str | None = None) -> Entry | Lookup:
        """The file's entry when it need not be decoded (it cannot be read, or the cache
        holds every card), else what the cache holds for it. `digest`: its content hash,
        when the caller has it already."""
        try:
            digest = digest or file_hash(path)
        except OSError as e:
            return Entry(path.name, unreadable(f"{path.name}: cannot read ({e})"))
        stored = self.cache.image(digest) if self.cache else None
        cards = self.cached(digest)
        if stored and all(c is not None for c in cards):  # no need even to decode it
            return self.reused(path.name, cards, *stored, digest, str(path))
        return Lookup(digest, stored, cards)

    def frame(self, part: Part, meta: dict[str, Any], thumb: Callable[[], bytes],
              partial: str = "") -> Entry:
        """The entry of a part: unscored when it is not a frame or decoded only in part, read
        from its PNG, reused, else a placeholder (NOT_SCORED) the sources will fill in. A new
        frame's thumbnail (`thumb()`) and metadata go into the cache."""
        if part.error:
            self.counts.unreadable += part.broken
            return Entry(part.name, unreadable(part.error), meta=meta, sha256=part.sha256,
                         path=part.path)
        known = self.cache.image(part.key) if self.cache else None
        shown = known[0] if known and known[0] else thumb()
        if self.cache and not known:
            self.cache.put_image(part.key, shown, meta)
        sha, path = part.sha256, part.path
        if partial:
            self.counts.unreadable += 1
            return Entry(part.name, unreadable(partial), shown, meta, sha256=sha, path=path)
        if part.saved is not None:
            self.counts.from_png += 1
            return Entry(part.name, self.decide(part.saved), shown, meta, origin="png",
                         sha256=sha, path=path)
        cards = self.cached(part.key)
        if all(c is not None for c in cards):
            return self.reused(part.name, cards, shown, meta, sha, path)
        return Entry(part.name, unreadable(NOT_SCORED), shown, meta, sha256=sha, path=path)

    def reused(self, name: str, cards: list[list[ScoreCard] | None], thumb: bytes | None,
               meta: dict[str, Any], sha256: str, path: str) -> Entry:
        """The entry of an image whose every card came from the cache."""
        self.counts.reused += 1
        verdict = self.combine([[c for cs in cards for c in cs or ()]])[0]
        return Entry(name, verdict, thumb, meta, origin="cache", sha256=sha256, path=path)

    def store(self, done: Sequence[Done]) -> list[bool]:
        """Store the cards the keyed sources made now (one transaction; a row per image
        and source, so storing a row again replaces it) and count the images: per image,
        whether a keyed source ran (scored) or only stand-ins did (reused)."""
        keyed = [j for j, p in enumerate(self.plans) if p.key is not None]
        if self.cache is not None:
            self.cache.put_cards((key, self.plans[j].key, cards[j]) for key, cards, ran in done
                                 for j in keyed if ran[j] and cacheable(cards[j] or []))
        scored = [any(ran[j] for j in keyed) for _, _, ran in done]
        self.counts.scored += sum(scored)
        self.counts.reused += len(scored) - sum(scored)
        return scored

    def combine(self, sheet: Sheet) -> list[Verdict]:
        """Each image's verdict from its cards: calibrated, aggregated, decided."""
        if self.calibrations:
            sheet = [apply_calibrations(cards, self.calibrations) for cards in sheet]
        return [self.decide(v) for v in combine_sheet(sheet, self.settings)]

    def decide(self, verdict: Verdict) -> Verdict:
        """The verdict under this run's pass rule (a verdict read from a PNG included: the
        report says what this run's rule decides)."""
        return dataclasses.replace(verdict, decision=decide([verdict], self.rule)[0])

    # -- the one-process engine ---------------------------------------------------------
    def batch(self, paths: Sequence[Path]) -> list[Entry]:
        """One entry per file in order — one per frame of an animated file, named `file#k`
        (as LoadImage reads it), and one `file#a-b` for the frames past MAX_FRAMES;
        unreadable files, and files cut short, become unscored entries with the reason.
        Frames are decoded one at a time, and the sources run whenever the decoded frames
        waiting reach `max_bytes` (so a batch is bounded by memory, not only by count)."""
        self.beside.between_batches(self.unload)
        entries: list[Entry] = []
        work: list[Work] = []
        for path in paths:
            found = self.lookup(path)
            if isinstance(found, Entry):
                entries.append(found)
                continue
            meta = found.stored[1] if found.stored else read_meta(path)
            for part in parts(path, found.digest, self.labels):
                frame = part.frame
                entry = self.frame(part, meta, lambda f=frame: thumbnail(f.image),
                                   frame.partial if frame else "")
                entries.append(entry)
                if entry.verdict.unscored == NOT_SCORED:
                    work.append((len(entries) - 1, part.key, frame.image,
                                 found.cards if part.key == found.digest
                                 else self.cached(part.key)))
                    if sum(w[2].nbytes for w in work) >= self.max_bytes:
                        self._score(work, entries)
                        work = []
                del frame, part
        if work:
            self._score(work, entries)
        return entries

    def _score(self, work: list[Work], entries: list[Entry]) -> None:
        """Run each source on the images missing its cards, cache them, combine."""
        per_source = [[cards[j] for *_, cards in work] for j in range(len(self.plans))]
        ran = [[False] * len(self.plans) for _ in work]
        sheet: Sheet = [[] for _ in work]
        for j, plan in enumerate(self.plans):
            todo = [k for k in range(len(work)) if per_source[j][k] is None]
            if todo:
                if plan.key is not None:  # a source that loads a model (not a stand-in)
                    self.beside.make_room()
                fresh = run_source(plan.source, [work[k][2] for k in todo],
                                   self.context([sheet[k] for k in todo], self.budget(j)))
                for k, cards in zip(todo, fresh, strict=True):
                    per_source[j][k], ran[k][j] = list(cards), True
            sheet = merge_sheets(sheet, [per_source[j][k] or [] for k in range(len(work))])
        scored = self.store([(key, [per_source[j][k] for j in range(len(self.plans))], ran[k])
                             for k, (_, key, *_) in enumerate(work)])
        for k, ((i, *_), verdict) in enumerate(zip(work, self.combine(sheet), strict=True)):
            entries[i] = dataclasses.replace(entries[i], verdict=verdict,
                                             origin="" if scored[k] else "cache")

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
