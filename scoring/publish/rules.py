"""The mosaic rules Japanese stores work to, and each image's publish verdict.

The rule creators work to: blocks of at least ⌈long side ÷ 100⌉ px and never under 4 px;
one large store applies about twice that ("strict ×2"). A region is obscured when what
covers it (`measure.Cover`) is a mosaic with blocks at least that big, or a solid black bar
or white-out, over at least `min_cover` of it. The verdict assists the creator's own review:
it is no legal opinion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.cards import NEEDS_WORK
from .measure import Box, Cover, measure

PUBLISHABLE, UNCHECKED = "publishable", "unchecked"
OK, NEEDS_MOSAIC, TOO_FINE = "ok", "needs mosaic", "too fine"


@dataclass(frozen=True)
class Rule:
    """Blocks of at least `factor` × max(`minimum`, ⌈long side ÷ `divisor`⌉) px covering at
    least `min_cover` of each region."""

    name: str
    divisor: int = 100
    minimum: int = 4
    factor: int = 1
    min_cover: float = 0.9

    def __post_init__(self) -> None:
        if not (1 <= self.divisor <= 10_000 and 1 <= self.minimum <= 1_000
                and 1 <= self.factor <= 10 and 0.0 < self.min_cover <= 1.0):
            raise ValueError(f"mosaic rule {self.name!r}: need divisor 1–10000, minimum "
                             "1–1000 px, factor 1–10 and min_cover in (0, 1]")

    def block_for(self, width: int, height: int) -> int:
        """The smallest block this rule accepts on a width × height image."""
        return self.factor * max(self.minimum, math.ceil(max(width, height) / self.divisor))

    def describe(self) -> str:
        times = f" ×{self.factor}" if self.factor != 1 else ""
        return (f"{self.name}: blocks ≥ ⌈long side/{self.divisor}⌉ and ≥ {self.minimum} px"
                f"{times}, covering ≥ {self.min_cover:.0%} of each region")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "divisor": self.divisor, "minimum": self.minimum,
                "factor": self.factor, "min_cover": self.min_cover}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rule:
        """A rule read back from a verdict (ValueError when it is not one)."""
        try:
            return cls(str(d["name"]), int(d["divisor"]), int(d["minimum"]), int(d["factor"]),
                       float(d["min_cover"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a mosaic rule: {d!r}") from e


PRESETS: dict[str, Rule] = {
    "1/100": Rule("1/100"),
    "strict x2": Rule("strict x2", factor=2),
}
"""The rule presets by name; "custom" takes divisor and minimum from the caller."""
CUSTOM = "custom"


def rule_for(name: str, *, divisor: int = 100, minimum: int = 4,
             min_cover: float | None = None) -> Rule:
    """A preset by name, or (`name` "custom") the caller's divisor and minimum;
    `min_cover` None keeps the default."""
    key = (name or "1/100").strip().lower().replace("×", "x")
    if key == CUSTOM:
        r = Rule(CUSTOM, divisor=int(divisor), minimum=int(minimum))
    elif key in PRESETS:
        r = PRESETS[key]
    else:
        raise ValueError(f"unknown mosaic rule {name!r}; known: {', '.join([*PRESETS, CUSTOM])}")
    return replace(r, min_cover=float(min_cover)) if min_cover is not None else r


@dataclass(frozen=True)
class Region:
    """A region that must be obscured: where, what the detector saw, and how sure it was."""

    box: Box
    label: str
    score: float
    detector: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "label": self.label, "score": self.score,
                "detector": self.detector}


@dataclass(frozen=True)
class RegionCheck:
    """One region against the rule: its cover, the block it needs, and the outcome."""

    name: str
    region: Region
    cover: Cover
    needed: int
    status: str

    @property
    def reason(self) -> str:
        c, where = self.cover, f"{self.name} ({self.region.label})"
        if self.status == OK:
            what = f"mosaic {c.block} px" if c.kind == "mosaic" else f"{c.bar_colour} bar"
            return f"{where}: {what} over {c.cover:.0%}"
        if self.status == TOO_FINE:
            return f"{where}: mosaic too fine ({c.block} px found, {self.needed} px needed)"
        if c.kind == "mosaic":
            why = f"the {c.block} px mosaic covers only {c.cover:.0%}"
        elif c.kind == "bar":
            why = f"the {c.bar_colour} bar covers only {c.cover:.0%}"
        elif c.kind == "blur":
            why = "it is blurred, not a mosaic"
        else:
            why = "nothing covers it"
        return f"{where}: needs a mosaic ({why}; {self.needed} px blocks)"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.region.to_dict(), "cover": self.cover.to_dict(),
                "needed": self.needed, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class PublishVerdict:
    """An image's verdict: publishable when every region is obscured under the rule."""

    rule: Rule
    needed: int
    regions: tuple[RegionCheck, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        return PUBLISHABLE if all(r.status == OK for r in self.regions) else NEEDS_WORK

    @property
    def failing(self) -> list[RegionCheck]:
        return [r for r in self.regions if r.status != OK]

    def summary(self) -> str:
        """One line: the status, then what needs work (or how many regions are fine)."""
        if not self.regions:
            return f"{PUBLISHABLE}: no region to obscure found ({self.rule.name})"
        if self.status == PUBLISHABLE:
            return (f"{PUBLISHABLE}: {len(self.regions)} region(s) obscured "
                    f"({self.rule.name}, ≥ {self.needed} px)")
        return f"{NEEDS_WORK}: " + "; ".join(r.reason for r in self.failing)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary(), "rule": self.rule.to_dict(),
                "needed": self.needed, "regions": [r.to_dict() for r in self.regions]}


def check_region(name: str, region: Region, cover: Cover, needed: int, rule: Rule) -> RegionCheck:
    """One region's outcome under `rule`."""
    if cover.kind == "bar" and cover.cover >= rule.min_cover:
        status = OK
    elif cover.kind == "mosaic" and cover.cover >= rule.min_cover:
        status = OK if cover.block >= needed else TOO_FINE
    else:
        status = NEEDS_MOSAIC
    return RegionCheck(name, region, cover, needed, status)


def judge(regions: Sequence[Region], covers: Sequence[Cover], width: int, height: int,
          rule: Rule) -> PublishVerdict:
    """The verdict for an image of width × height with these regions and their covers;
    regions are named R1, R2… in the order given."""
    needed = rule.block_for(width, height)
    checks = tuple(check_region(f"R{i + 1}", r, c, needed, rule)
                   for i, (r, c) in enumerate(zip(regions, covers, strict=True)))
    return PublishVerdict(rule, needed, checks)


def recheck(image: Any, verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict (as `to_dict` wrote it) judged again on `image` (uint8 HxWx3) — the same
    regions under the same rule, measured anew (after a mosaic was applied)."""
    rule = Rule.from_dict(verdict["rule"])
    regions = [Region(tuple(int(v) for v in r["box"]), str(r["label"]), float(r["score"]),
                      str(r.get("detector", ""))) for r in verdict["regions"]]
    h, w = image.shape[:2]
    return judge(regions, [measure(image, r.box) for r in regions], w, h, rule).to_dict()


def unchecked(why: str) -> dict[str, Any]:
    """The verdict of an image the check could not judge."""
    return {"status": UNCHECKED, "summary": f"{UNCHECKED}: {why}", "regions": []}


def publish_of(cards: Iterable[Any]) -> dict[str, Any]:
    """An image's publish verdict from its cards: the last censor card's (as `to_dict`
    wrote it); UNCHECKED with the reason when the check abstained or none ran."""
    found: dict[str, Any] | None = None
    for c in cards:
        p = c.extras.get("publish")
        if p is not None:
            found = p if c.ok else unchecked(c.abstained or "abstained")
        elif not c.ok and c.source == "censor" and found is None:  # could not even start
            found = unchecked(c.abstained or "abstained")
    return found or unchecked("no publish check ran")
