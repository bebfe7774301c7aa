"""The publish check's measurement: how exact, how robust to JPEG, how fast. One line.

    python bench/publish.py        # --cases 60 --seed 0

Paints `--cases` mosaics (block 2–32 px, random grid offset, random region on an anime-like
scene of 512–2048 px, the test suite's painter `tests/helpers/censor_images.py`) and measures
each as lossless PNG, then after a JPEG round trip at quality 95 and 90: "exact" = the block
and the grid found as painted, covering ≥ 90 % of the region; "coarser" counts the one unsafe
error (a block found larger than painted, covering enough to pass). Times the measurement per
region side by side with NudeNet's own 320n.onnx on the same images (the detector a Saiten
user already runs), so the line reads as a ratio on any machine.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers.censor_images import mark, paint_mosaic, scene  # noqa: E402

from scoring.publish import measure  # noqa: E402
from scoring.sources import create  # noqa: E402


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(PILImage.open(buf).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    exact = {"png": 0, "q95": 0, "q90": 0}
    over = 0  # a block measured larger than painted, covering enough: the unsafe error
    t_measure, t_nudenet = [], []
    nudenet = create("nudenet", batch_size=1)
    for i in range(args.cases):
        side = int(rng.choice([512, 768, 1024, 1344, 2048]))
        h, w = (side, int(side * 0.75)) if i % 2 else (int(side * 0.75), side)
        block = int(rng.integers(2, 33))
        grid = (int(rng.integers(0, block)), int(rng.integers(0, block)))
        bw, bh = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = (x0, y0, x0 + bw, y0 + bh)
        img = paint_mosaic(mark(scene(h, w, seed=i), box), box, block, grid)
        for name, data in (("png", img), ("q95", jpeg(img, 95)), ("q90", jpeg(img, 90))):
            t0 = time.perf_counter()
            c = measure(data, box)
            if name == "png":
                t_measure.append(time.perf_counter() - t0)
            exact[name] += c.kind == "mosaic" and c.block == block and c.grid == grid \
                and c.cover >= 0.9
            over += c.kind == "mosaic" and c.block > block and c.cover >= 0.9
        t0 = time.perf_counter()
        nudenet.score([img.astype(np.float32) / 255.0])
        t_nudenet.append(time.perf_counter() - t0)
    n = args.cases
    m, d = statistics.median(t_measure), statistics.median(t_nudenet[1:] or t_nudenet)
    print(f"publish measure: exact {exact['png']}/{n} lossless, {exact['q95']}/{n} JPEG q95, "
          f"{exact['q90']}/{n} JPEG q90, {over} measured coarser than painted; "
          f"{m * 1000:.0f} ms per region (median) = "
          f"{m / d:.2f}× NudeNet 320n per image ({d * 1000:.0f} ms) on this machine")


if __name__ == "__main__":
    main()
