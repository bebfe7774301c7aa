"""The interface every scoring backend implements, and the context a batch is scored in."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..cards import AXES, ScoreCard, Sheet
from ..images import Image
from ..memory import DEFAULT, MemoryPolicy
from ..rubric import Rubric

log = logging.getLogger("saiten")


class Cancelled(Exception):
    """The user cancelled the run; never turned into an abstention."""


class SourceError(Exception):
    """A source cannot run at all (missing dependency, missing or mismatched model file).

    The message is shown on the node as it is, so it says what to do.
    """


def _never() -> bool:
    return False


def _ignore(_: int) -> None:
    pass


@dataclass
class ScoreContext:
    """What a source may use besides the images.

    `prior[i]` holds the cards other sources already made for image i (tags, ratings and
    comments for prompts). `progress(i)` is called once image i is done; `interrupted()` is
    polled between images and chunks, and a source then raises `Cancelled`.
    """

    rubric: Rubric = field(default_factory=Rubric.default)
    prior: Sheet | None = None
    progress: Callable[[int], None] = _ignore
    interrupted: Callable[[], bool] = _never
    repeats: int = 1

    def check(self) -> None:
        """Raise Cancelled if the user cancelled."""
        if self.interrupted():
            raise Cancelled("cancelled")

    def prior_cards(self, i: int) -> list[ScoreCard]:
        return list(self.prior[i]) if self.prior and i < len(self.prior) else []


class Source(ABC):
    """A scorer: a batch of images in, one card per image out (abstentions are cards too).

    Subclasses set the class attributes and implement `_score`. `load`/`unload` manage the
    model; `score` loads on demand, guarantees one card per image, and turns any failure
    but cancellation into abstentions with the reason.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    provides: ClassVar[tuple[str, ...]] = AXES
    default_weight: ClassVar[float] = 1.0

    def __init__(
        self, *, label: str | None = None, weight: float | None = None,
        memory: MemoryPolicy | None = None,
    ) -> None:
        self.label = label or self.name
        self.weight = self.default_weight if weight is None else float(weight)
        self.memory = memory or DEFAULT

    # -- model life cycle -------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return True

    def memory_bytes(self) -> int:
        """Estimated accelerator memory the loaded model needs (0 for none)."""
        return 0

    def load(self) -> None:
        """Load the model (reserving memory through `self.memory` first). Idempotent."""

    def unload(self) -> None:
        """Release everything `load` took. Idempotent."""

    def describe(self) -> str:
        """One line for the node: model, runtime and device in use."""
        return self.label

    # -- scoring ----------------------------------------------------------------------
    def card(self, **kw: Any) -> ScoreCard:
        """A card from this source (label, kind, provides and weight filled in)."""
        kw.setdefault("weight", self.weight)
        return ScoreCard(source=self.label, kind=self.kind, provides=self.provides, **kw)

    def abstain(self, reason: str, **kw: Any) -> ScoreCard:
        return ScoreCard.abstain(
            self.label, self.kind, reason, provides=self.provides, weight=self.weight, **kw
        )

    def score(self, images: Sequence[Image], ctx: ScoreContext | None = None) -> Sheet:
        """Score a batch: `sheet[i]` holds this source's cards for image i (one card, or
        one per repeat for sampling sources); never fewer images than given."""
        ctx = ctx or ScoreContext()
        if not images:
            return []
        try:
            self.load()
            sheet = self._score(list(images), ctx)
        except Cancelled:
            raise
        except Exception as e:  # a source that cannot run abstains for the whole batch
            reason = str(e) if isinstance(e, SourceError) else f"{type(e).__name__}: {e}"
            log.warning("saiten: %s abstains: %s", self.label, reason)
            return [[self.abstain(reason)] for _ in images]
        if len(sheet) != len(images):
            n, m = len(sheet), len(images)
            raise RuntimeError(f"{self.label} returned {n} results for {m} images")
        return sheet

    @abstractmethod
    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        """Cards per image. Per-image failures become `[self.abstain(reason)]` for that image
        (`each` does this for sources that work one image at a time)."""

    def each(self, images: list[Image], ctx: ScoreContext,
             one: Callable[[int, Image], ScoreCard | list[ScoreCard]]) -> Sheet:
        """Score images one at a time with `one`, abstaining per image on failure,
        reporting progress and honouring cancellation between images."""
        sheet: Sheet = []
        for i, img in enumerate(images):
            ctx.check()
            try:
                got = one(i, img)
                sheet.append(got if isinstance(got, list) else [got])
            except Cancelled:
                raise
            except Exception as e:
                log.warning("saiten: %s abstains on image %d: %s", self.label, i, e)
                sheet.append([self.abstain(f"{type(e).__name__}: {e}")])
            ctx.progress(i)
        return sheet
