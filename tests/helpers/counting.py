"""A counting source for the runner and resume-cache tests: it scores appeal/overall from
the mean brightness and counts the images it saw and its loads; `runner` puts it before the
technical check, each with its resume-cache key; `random_pngs` writes images to score."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image as PILImage

from scoring.batch.resume_cache import source_key
from scoring.batch.runner import Planned, Runner
from scoring.core.images import Image
from scoring.ensemble.aggregate import AggregateSettings
from scoring.sources import ScoreContext, Source
from scoring.sources.technical import TechnicalCheck


class Counting(Source):
    """Scores appeal/overall from the mean brightness and counts the images it saw."""

    name: ClassVar[str] = "counting"
    kind: ClassVar[str] = "vlm"
    provides: ClassVar[tuple[str, ...]] = ("appeal", "overall")

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.seen = 0
        self.loads = 0
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        self.loads += not self._loaded
        self._loaded = True

    def unload(self) -> None:
        self._loaded = False

    def _score(self, images: list[Image], ctx: ScoreContext):
        self.seen += len(images)
        v = [float(np.nanmean(im)) * 100 for im in images]
        return [[self.card(axes={"appeal": x, "overall": x})] for x in v]


def runner(cache, source, **kw) -> Runner:
    plans = [Planned(source, source_key("counting", {}, "r")),
             Planned(TechnicalCheck(), source_key("technical", {}, "r", ["counting"]))]
    return Runner(plans, AggregateSettings(), cache=cache, **kw)


def random_pngs(d: Path) -> Path:
    """Five random 48×48 PNGs in `d` (created)."""
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        PILImage.fromarray(rng.integers(0, 255, (48, 48, 3), np.uint8)).save(d / f"{i}.png")
    return d
