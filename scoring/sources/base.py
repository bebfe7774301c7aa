"""The interface every scoring backend implements: built once from its build options, run
per call with its run options (in the ScoreContext), returning a Result.

A source instance is a loaded-model handle: nothing a call asks for (method, label, weight,
keep_loaded…) is ever written onto it, so two callers with different run options can share
one instance. What it was built with is its read-only `build` (see `handles.identity`); the
run options it was created with are its frozen `defaults`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from ..core.cards import AXES, ScoreCard, Sheet
from ..core.errors import Cancelled, SourceError, reason
from ..core.images import Image
from ..core.rubric import Rubric
from ..host.memory import DEFAULT, MemoryPolicy
from .spec import RunOptions, Spec

log = logging.getLogger("saiten")


def _never() -> bool:
    return False


def _ignore(_: int) -> None:
    pass


@dataclass
class ScoreContext:
    """What a call gives a source besides the images.

    `prior[i]` holds the cards other sources already made for image i (tags, ratings and
    comments for prompts). `progress(i)` is called once image i is done; `interrupted()` is
    polled between images and chunks, and a source then raises `Cancelled`. `options` are
    this call's run options (a mapping of overrides, or the source's Options); inside
    `_score` they are resolved to the source's Options type.
    """

    rubric: Rubric = field(default_factory=Rubric.default)
    prior: Sheet | None = None
    progress: Callable[[int], None] = _ignore
    interrupted: Callable[[], bool] = _never
    repeats: int = 1
    options: Any = None

    def check(self) -> None:
        """Raise Cancelled if the user cancelled."""
        if self.interrupted():
            raise Cancelled("cancelled")

    def prior_cards(self, i: int) -> list[ScoreCard]:
        return list(self.prior[i]) if self.prior and i < len(self.prior) else []


class Result(list):
    """What one call returns: the sheet itself (`result[i]` = this source's cards for image
    i) plus what the caller shows — never read back from the source afterwards."""

    def __init__(self, sheet: Sheet = (), *, label: str = "", describe: str = "",
                 provider: str = "", reused: bool = False, seconds: float = 0.0,
                 timing: Mapping[str, float] | None = None, prompts: Sequence[str | None] = (),
                 cost: str = "", costs: Any = None) -> None:
        super().__init__(sheet)
        self.label, self.describe, self.provider = label, describe, provider
        self.reused, self.seconds = reused, seconds
        self.timing = dict(timing or {})
        self.prompts = list(prompts)
        self.cost, self.costs = cost, costs  # the cost line, and the call's CostLog

    @property
    def sheet(self) -> Sheet:
        return list(self)


class Source(ABC):
    """A scorer: a batch of images in, one Result (one card per image; abstentions are
    cards too) out.

    Subclasses set `spec` (the declared facts, see `scoring.sources.spec.Spec`) and implement
    `_score`. `load`/`unload` manage the model; `score` loads on demand, guarantees one card
    per image, stamps the call's label and weight on the cards, and turns any failure but
    cancellation into abstentions with the reason.
    """

    spec: ClassVar[Spec]
    name: ClassVar[str]
    kind: ClassVar[str]
    provides: ClassVar[tuple[str, ...]] = AXES
    default_weight: ClassVar[float] = 1.0
    Options: ClassVar[type[RunOptions]] = RunOptions

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        spec = cls.__dict__.get("spec")
        if spec is not None:  # the declared spec is the one place these facts live
            cls.name, cls.kind, cls.provides = spec.name, spec.kind, spec.provides
            cls.default_weight, cls.Options = spec.default_weight, spec.options
        elif "name" in cls.__dict__:  # a source declared by class attributes alone
            cls.spec = Spec(cls.name, cls.kind, tuple(cls.provides), cls.default_weight,
                            cls.Options)

    def __new__(cls, *args: Any, **kwargs: Any) -> Source:
        self = super().__new__(cls)
        self.build = cls._build_options(args, kwargs)
        return self

    @classmethod
    def _build_options(cls, args: tuple, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        """What a source is built with: its constructor's arguments, run options and the
        memory policy left out (recorded once, as the constructor is called)."""
        sig = inspect.signature(cls.__init__)
        try:
            bound = sig.bind(None, *args, **kwargs).arguments
        except TypeError:  # the constructor will say what is wrong
            bound = {"self": None, **kwargs}
        given: dict[str, Any] = {}
        for name, value in list(bound.items())[1:]:
            param = sig.parameters.get(name)
            if param is not None and param.kind is inspect.Parameter.VAR_KEYWORD:
                given.update(value)
            else:
                given[name] = value
        run = set(cls.Options.__dataclass_fields__) | {"memory"}
        return MappingProxyType({k: v for k, v in given.items() if k not in run})

    def __init__(self, *, memory: MemoryPolicy | None = None, **options: Any) -> None:
        self.memory = memory or DEFAULT
        try:
            self.defaults = self.Options(**options)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e}") from None

    @property
    def label(self) -> str:
        """The cards' source name when a call does not give one."""
        return self.defaults.label or self.name

    def options(self, given: Any = None) -> RunOptions:
        """This call's run options: `given` (a mapping of overrides, or an Options) over
        the source's defaults, validated. Label and weight are filled in."""
        if isinstance(given, RunOptions):
            opts = given
        else:
            try:
                opts = dataclasses.replace(self.defaults, **dict(given or {}))
            except TypeError as e:
                raise SourceError(f"{self.name}: {e}") from None
        label = (opts.label or "").strip() or self.label
        weight = opts.weight if opts.weight is not None else self.weight_for(label)
        return dataclasses.replace(opts, label=label, weight=float(weight))

    def weight_for(self, label: str) -> float:
        """The default weight of cards labelled `label` (the catalogue's, e.g. joycaption
        0.9 whichever runtime runs it; else the source's own default)."""
        return self.spec.weight_for(label)

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
        """A card from this source (kind and provides filled in; `score` stamps the call's
        label and weight)."""
        return ScoreCard(source=self.label, kind=self.kind, provides=self.provides, **kw)

    def abstain(self, why: str, **kw: Any) -> ScoreCard:
        return ScoreCard.abstain(self.label, self.kind, why, provides=self.provides, **kw)

    def score(self, images: Sequence[Image], ctx: ScoreContext | None = None) -> Result:
        """Score a batch: `result[i]` holds this source's cards for image i (one card, or
        one per repeat for sampling sources); never fewer images than given."""
        ctx = ctx or ScoreContext()
        opts = self.options(ctx.options)
        if not images:
            return Result(label=opts.label)
        ctx = dataclasses.replace(ctx, options=opts)
        was_loaded, t0 = self.loaded, time.perf_counter()
        try:
            self.load()
            got = self._score(list(images), ctx)
        except Cancelled:
            if not opts.keep_loaded:
                self.unload()
            raise
        except Exception as e:  # a source that cannot run abstains for the whole batch
            why = reason(e)
            log.warning("saiten: %s abstains: %s", opts.label, why)
            got = [[self.abstain(why)] for _ in images]
        described = self.describe()  # while still loaded: the device and provider in use
        if not opts.keep_loaded:
            self.unload()
        if len(got) != len(images):
            n, m = len(got), len(images)
            raise RuntimeError(f"{opts.label} returned {n} results for {m} images")
        result = got if isinstance(got, Result) else Result(got)
        result[:] = [[_stamp(c, opts) for c in cards] for cards in result]
        result.label = opts.label
        result.describe = result.describe or described
        result.reused = result.reused or was_loaded
        result.seconds = time.perf_counter() - t0
        return result

    @abstractmethod
    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet | Result:
        """Cards per image (a Result to return more than cards). `ctx.options` is this
        call's resolved Options. Per-image failures become `[self.abstain(reason)]` for
        that image (`each` does this for sources that work one image at a time)."""

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


def _stamp(card: ScoreCard, opts: RunOptions) -> ScoreCard:
    """The card under this call's label and weight."""
    return dataclasses.replace(card, source=opts.label, weight=opts.weight)


class Unavailable(Source):
    """The one shape of "this source cannot run": it abstains on every image with the
    reason (the CLI, the nodes and a failed creation all use it)."""

    name = "unavailable"
    kind = "detector"

    def __init__(self, name: str, why: str, *, kind: str = "detector",
                 provides: tuple[str, ...] = (), label: str = "") -> None:
        super().__init__(label=label or name)
        self.source_name, self.why = name, why
        self._kind, self._provides = kind, tuple(provides)

    def abstain(self, why: str, **kw: Any) -> ScoreCard:
        return ScoreCard.abstain(self.label, self._kind, why, provides=self._provides, **kw)

    def options(self, given: Any = None) -> RunOptions:
        """Whatever the caller meant to pass the real source: only label and weight matter."""
        if isinstance(given, Mapping):
            given = {k: v for k, v in given.items() if k in RunOptions.__dataclass_fields__}
        return super().options(given if not isinstance(given, RunOptions) else None)

    def describe(self) -> str:
        return f"{self.label}: unavailable — {self.why}"

    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        raise SourceError(self.why)


__all__ = ["Cancelled", "Result", "ScoreContext", "Source", "SourceError", "Unavailable", "log"]
