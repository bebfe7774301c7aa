"""Resume from the score cache: a second run over the same folder against the first, side by
side in one process (fresh sources each time, so model loading counts where it happens).

    python bench/resume.py          # --images 120 --sources nudenet,technical

Prints one line: both times and their ratio, and how many images each run scored.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.batch.resume_cache import ScoreCache, key_for
from scoring.batch.runner import Planned, Runner
from scoring.ensemble.aggregate import AggregateSettings
from scoring.sources import create


def run(paths: list[Path], names: list[str], out: Path, batch: int) -> tuple[float, int]:
    keys: list[str] = []
    plans = []
    for name in names:
        source = create(name)
        keys.append(key_for(source, 1, "", keys))
        plans.append(Planned(source, keys[-1]))
    t0 = time.perf_counter()
    with ScoreCache(out) as cache:
        runner = Runner(plans, AggregateSettings(min_sources=1), cache=cache)
        for i in range(0, len(paths), batch):
            runner.batch(paths[i:i + batch])
        runner.unload()
    return time.perf_counter() - t0, runner.counts.scored


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=120)
    p.add_argument("--sources", default="nudenet,technical")
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    names = a.sources.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(a.images):
            px = rng.integers(0, 255, (512, 512, 3), np.uint8)
            px[:, :256] //= 2
            PILImage.fromarray(px).save(folder / f"{i:04}.png")
        paths = sorted(folder.iterdir())
        first, n1 = run(paths, names, Path(tmp) / "out", a.batch)
        second, n2 = run(paths, names, Path(tmp) / "out", a.batch)
    print(f"resume bench ({a.sources}, {a.images} images of 512x512): first run {first:.2f}s "
          f"({n1} scored), second run {second:.2f}s ({n2} scored, the rest from the cache): "
          f"second/first = {second / first:.3f}")


if __name__ == "__main__":
    main()
