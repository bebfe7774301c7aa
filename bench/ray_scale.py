"""Ray scaling: one folder scored by the one-process Runner and by the Ray engine on a local
cluster of 1, then 2 worker nodes, side by side in one process: one-process, Ray ×1, Ray ×2,
one-process again. A worker is a `ray start` node with 1 CPU pinned to a core of its own:
the first on core 1, the second on core 0. The head node (0 CPUs: it runs the cluster, not
the scoring) and this process as Ray's driver are on core 0; the one-process path runs on
core 1, where the first worker scores. ONNX models compute on one thread in both paths (as
in a Ray CPU actor: onnxruntime's own pool would not keep to the core it is given).

    python bench/ray_scale.py      # --images 400 --side 512 --sources nudenet,technical,wd

Prints one line: images/s with 1 and 2 workers and their ratio, and the Ray path's
per-image overhead over the one-process path at 1 worker. Rates are steady-state (from the
first batch's result to the last: startup, actor start and model loading left out, alike for
both paths); the end-to-end times, startup included, follow in brackets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers.models.onnx_models import build_wd, wd_tags  # noqa: E402
from helpers.ray_cluster import QUIET, RayCluster  # noqa: E402

from scoring.batch.ray_engine import RayEngine, Recipe  # noqa: E402
from scoring.batch.resume_cache import key_for  # noqa: E402
from scoring.batch.runner import Planned, Runner  # noqa: E402
from scoring.ensemble.aggregate import AggregateSettings  # noqa: E402
from scoring.sources import create  # noqa: E402
from scoring.sources.onnx import session as onnx_session  # noqa: E402


def folder(root: Path, n: int, side: int) -> list[Path]:
    d = root / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, 255, (side, side, 3), np.uint8)
        a[:, : side // 2] //= 1 + i % 4
        PILImage.fromarray(a).save(d / f"img_{i:04}.png")
    return sorted(d.iterdir())


def runner(names: Sequence[str], options: dict[str, dict]) -> Runner:
    plans, keys = [], []
    for name in names:
        source = create(name, **options.get(name, {}))
        keys.append(key_for(source, 1, ""))
        plans.append(Planned(source, keys[-1]))
    return Runner(plans, AggregateSettings(min_sources=1))


def timed(batches: Iterable[list], n: int) -> tuple[float, float]:
    """(steady images/s from the first batch's end to the last's, end-to-end seconds)."""
    t0 = time.perf_counter()
    first, done = None, 0
    for got in batches:
        done += len(got)
        if first is None:
            first, head = time.perf_counter(), done
    end = time.perf_counter()
    assert done == n, f"{done} of {n} images came back"
    return (n - head) / (end - first), end - t0


def one_process(paths: list[Path], names: Sequence[str], options: dict, batch: int):
    r = runner(names, options)
    try:
        return timed((r.batch(paths[i:i + batch]) for i in range(0, len(paths), batch)),
                     len(paths))
    finally:
        r.unload()


def on_ray(address: str, paths: list[Path], names: Sequence[str], options: dict,
           batch: int):
    """The engine joins the cluster (the `scoring` package travels with the job, as in
    `score --engine ray`) and leaves it when its results end."""
    r = runner(names, options)
    engine = RayEngine(r, [Recipe.of(p.source) for p in r.plans], address=address, batch=batch)
    return timed((entries for entries, _ in engine.entries(paths)), len(paths))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--sources", default="nudenet,technical,wd")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--side", type=int, default=512, help="image side in px (default 512)")
    a = p.parse_args()
    os.environ.update(QUIET)
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    names = a.sources.split(",")
    with tempfile.TemporaryDirectory(prefix="saiten-ray-bench-") as tmp:
        root = Path(tmp)
        paths = folder(root, a.images, a.side)
        tags = wd_tags()
        rng = np.random.default_rng(3)
        wd = build_wd(root / "wd-tiny-v3", tags, rng.normal(0, 3, (3, len(tags))),
                      rng.normal(0, 1, len(tags)))
        options = {"wd": {"model_path": str(wd)}}
        onnx_session.use_threads(1)  # onnxruntime's own threads would not keep to the core
        os.sched_setaffinity(0, {1})
        local = [one_process(paths, names, options, a.batch)]
        os.sched_setaffinity(0, {0})
        cluster = RayCluster(root / "logs", workers=1, head_cpus=0, cores=[0, 1, 0])
        try:
            ray1 = on_ray(cluster.address, paths, names, options, a.batch)
            cluster.add_worker()
            ray2 = on_ray(cluster.address, paths, names, options, a.batch)
        finally:
            cluster.stop()
        os.sched_setaffinity(0, {1})
        local.append(one_process(paths, names, options, a.batch))
    rate = sum(x for x, _ in local) / 2
    overhead = rate / ray1[0] - 1
    load = os.getloadavg()[0]
    print(f"ray_scale ({a.images} images of {a.side}², {','.join(names)}, batch {a.batch}, "
          "CPU, one core per worker): "
          f"1 worker {ray1[0]:.1f} img/s, 2 workers {ray2[0]:.1f} img/s, "
          f"ratio {ray2[0] / ray1[0]:.2f}x; Ray per-image overhead at 1 worker vs one "
          f"process ({rate:.1f} img/s): {overhead:+.0%} (target <= +10%) "
          f"[end to end: one process {local[0][1]:.0f}/{local[1][1]:.0f} s, Ray x1 "
          f"{ray1[1]:.0f} s, x2 {ray2[1]:.0f} s; load average {load:.1f}]")


if __name__ == "__main__":
    main()
