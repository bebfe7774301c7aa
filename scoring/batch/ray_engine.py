"""`--engine ray`: the same scoring on a Ray cluster (Ray Data), for archives one process
cannot get through in a night.

The driver (this process) hashes each file and asks the score cache what it holds, as the
one-process Runner does; only the images still missing cards go to Ray Data: decoded in CPU
tasks, through one stage per source in the run's order — a model's source in an actor pool
that builds it once per actor and asks for the share of a GPU its memory estimate needs (the
CPU where the cluster has no GPU), a remote source (judge, HTTP VLM) in an actor pool whose
budget, circuit breaker and answer cache are the run's (`ray_ledger`), the technical check in
tasks — and combined into verdicts in CPU tasks. Results stream back to the driver, which
stores each source's cards in the same `scores.sqlite` (one row per image and source: a task
Ray retries after a node died stores the same row again, never a second one) and yields the
report entries.

Every node needs Saiten's dependencies, the models at the same paths and the images at the
same path (a shared folder); the `scoring` package itself travels with the job.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cards import Verdict
from ..core.errors import SourceError
from ..report import Entry
from ..sources import Unavailable
from .ray_ledger import Ledger
from .ray_stages import (
    Recipe,
    RunSettings,
    SourceStage,
    batch_rows,
    decode,
    dump_cards,
    load_cards,
)
from .resume_cache import cacheable, file_hash
from .runner import Runner, unreadable

INSTALL = 'pip install "comfyui-saiten[ray]"'
"""What `--engine ray` needs (the `ray` extra: Ray Data), said when it is missing."""

PACKAGE = Path(__file__).resolve().parents[1]
"""The `scoring` package: it travels to every worker with the job (`py_modules`)."""

DEFAULT_CARD = 8 << 30
"""GPU memory assumed per card when no worker can say (the smallest card we target)."""

LIGHT_CPUS = 0.25
MODEL_CPUS = 0.5
REMOTE_CPUS = 0.25
"""CPUs each stage's task or actor reserves: fractions, so that on a small cluster every
stage keeps a place (an actor holds its CPUs while idle)."""

Log = Callable[[str], None]


def require_ray() -> Any:
    """The `ray` module with Ray Data, or a SourceError saying what to install."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise SourceError(f"--engine ray needs Ray Data in this Python ({e}): {INSTALL}") \
            from None
    return ray


def connect(address: str | None) -> Any:
    """Join the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:10001"), or start
    one on this machine when None; the `scoring` package travels with the job."""
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        local = {} if address else {"include_dashboard": False}
        ray.init(address=address, logging_level=logging.WARNING,
                 runtime_env={"py_modules": [str(PACKAGE)], "excludes": ["__pycache__"]},
                 **local)
    return ray


def gpus_for(nbytes: int, card: int) -> float:
    """GPUs one actor asks for: its model's share of a card rounded up to eighths (so several
    small taggers share one card), a whole card when the size is unknown."""
    if nbytes <= 0 or card <= 0:
        return 1.0
    return min(1.0, math.ceil(8 * nbytes / card) / 8)


def card_bytes(ray: Any) -> int:
    """The memory of the smallest GPU a worker sees (nvidia-smi there), or DEFAULT_CARD."""
    @ray.remote(num_gpus=1, num_cpus=0)
    def probe() -> int:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True)
        return min(int(x) for x in out.stdout.split()) << 20

    try:
        return int(ray.get(probe.remote(), timeout=120))
    except Exception:
        return DEFAULT_CARD


@dataclass(frozen=True)
class Stage:
    """How one source runs on the cluster: an actor pool of at most `actors` actors, each
    with `cpus` and `gpus`; `kind` is "light" (no model to speak of: the technical check, a
    source that cannot run), "model" or "remote" (a server does the work)."""

    kind: str
    recipe: Recipe
    cpus: float
    gpus: float = 0.0
    actors: int = 1


def plan_stages(runner: Runner, recipes: Sequence[Recipe], resources: dict[str, float],
                card: Callable[[], int]) -> list[Stage]:
    """Each source's stage from what it is and what the cluster has."""
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    stages = []
    for plan, recipe in zip(runner.plans, recipes, strict=True):
        src = plan.source
        if plan.key is None or isinstance(src, Unavailable) or src.kind == "check":
            stages.append(Stage("light", recipe, LIGHT_CPUS, actors=max(1, int(cpus))))
        elif "base_url" in src.spec.build:  # a server does the work: no GPU here
            stages.append(Stage("remote", recipe, REMOTE_CPUS,
                                actors=max(2, int(cpus))))
        elif gpus > 0:
            share = gpus_for(src.memory_bytes(), card())
            stages.append(Stage("model", recipe, MODEL_CPUS, share,
                                max(1, int(gpus / share))))
        else:
            stages.append(Stage("model", recipe, MODEL_CPUS,
                                actors=max(1, int(cpus / MODEL_CPUS))))
    return stages


@dataclass
class RayEngine:
    """Streams a run's entries from a Ray cluster (see the module docstring).

    `runner` holds the run (sources with their cache keys, cache, settings, counts);
    `recipes[j]` says how a worker builds source j."""

    runner: Runner
    recipes: Sequence[Recipe]
    address: str | None = None
    batch: int = 8
    log: Log = lambda _: None
    order: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Each entry's place (file, frame) in the paths given: report order."""

    @property
    def run(self) -> RunSettings:
        r = self.runner
        return RunSettings(len(r.plans), frozenset(p.source.label for p in r.plans), r.rubric,
                           r.repeats, r.settings, tuple(r.calibrations), r.rescore)

    # -- the driver's side of the cache --------------------------------------------------
    def _plan(self, paths: Sequence[Path]) -> tuple[list[Entry], list[dict[str, Any]]]:
        """(entries known now: reused or unreadable, rows for the cluster)."""
        r, ready, rows = self.runner, [], []
        with ThreadPoolExecutor(4) as pool:
            digests = list(pool.map(_digest, paths))
        for i, (path, digest) in enumerate(zip(paths, digests, strict=True)):
            self.order[path.name] = (i, 0)
            if isinstance(digest, OSError):
                ready.append(Entry(path.name, unreadable(f"{path.name}: cannot read "
                                                         f"({digest})")))
                continue
            stored = r.cache.image(digest) if r.cache else None
            cards = r._cached(digest)
            if stored and all(c is not None for c in cards):  # no need even to decode it
                ready.append(r._reused(path.name, cards, *stored))
                continue
            cached = {digest: cards}
            k = 0
            while r.cache is not None and r.cache.image(f"{digest}#{k}") is not None:
                cached[f"{digest}#{k}"] = r._cached(f"{digest}#{k}")
                k += 1
            rows.append({"order": i, "path": str(path), "name": path.name, "digest": digest,
                         "meta": json.dumps(stored[1], ensure_ascii=False) if stored else "",
                         "cached": json.dumps({key: json.loads(dump_cards(cs))
                                               for key, cs in cached.items()})})
        return ready, rows

    def _entry(self, row: dict[str, Any]) -> Entry:
        """A result row as its entry, its cards stored in the cache (once per image and
        source: a repeated row overwrites the same rows)."""
        r, name, key = self.runner, str(row["name"]), str(row["key"])
        self.order[name] = (int(row["order"]), int(key.rpartition("#")[2]) if "#" in key else 0)
        meta = json.loads(row["meta"] or "{}")
        if row["error"]:
            r.counts.unreadable += 1
            return Entry(name, unreadable(str(row["error"])), meta=meta)
        known = r.cache.image(key) if r.cache else None
        thumb = known[0] if known and known[0] else bytes(row["thumb"]) or None
        if r.cache is not None and not known:
            r.cache.put_image(key, thumb, meta)
        if row["saved"]:
            r.counts.from_png += 1
            return Entry(name, _verdict(row["saved"]), thumb, meta, origin="png")
        cards, ran = load_cards(row["cards"]), json.loads(row["ran"])
        keyed = [j for j, p in enumerate(r.plans) if ran[j] and p.key is not None]
        if r.cache is not None:
            r.cache.put_cards((key, r.plans[j].key, cards[j]) for j in keyed
                              if cacheable(cards[j] or []))
        if keyed:
            r.counts.scored += 1
        else:  # only stand-ins ran, or nothing at all
            r.counts.reused += 1
        return Entry(name, _verdict(row["verdict"]), thumb, meta,
                     origin="" if keyed else "cache")

    # -- the cluster --------------------------------------------------------------------
    def _dataset(self, ray: Any, rows: list[dict[str, Any]]) -> Any:
        run = self.run
        stages = plan_stages(self.runner, self.recipes, ray.cluster_resources(),
                             functools.cache(lambda: card_bytes(ray)))
        ledger = None
        if any(s.kind == "remote" for s in stages):
            here = ray.get_runtime_context().get_node_id()
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            ledger = ray.remote(Ledger).options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)
            ).remote(self.budgets())
        ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) /
                                                                          self.batch)))
        # with the first stage's resources, decoding runs inside its actors (Ray fuses the
        # two); before a GPU stage it stays in CPU tasks
        ds = ds.map_batches(decode, fn_kwargs={"run": run}, batch_size=self.batch,
                            num_cpus=stages[0].cpus)
        for j, stage in enumerate(stages):
            pool = ray.data.ActorPoolStrategy(min_size=1, max_size=stage.actors)
            ds = ds.map_batches(
                SourceStage, batch_size=self.batch, compute=pool, num_cpus=stage.cpus,
                num_gpus=stage.gpus or None,
                fn_constructor_kwargs={"index": j, "recipe": stage.recipe, "run": run,
                                       "last": j == len(stages) - 1,
                                       "ledger": ledger if stage.kind == "remote" else None})
        return ds

    def budgets(self) -> dict[str, tuple[int | None, float | None]]:
        """Each remote source's budget for the whole run, by label."""
        out = {}
        for p in self.runner.plans:
            opts = p.source.options()
            calls, usd = getattr(opts, "max_calls", 0), getattr(opts, "max_usd", 0.0)
            if calls or usd:
                out[opts.label] = (calls or None, usd or None)
        return out

    def entries(self, paths: Sequence[Path]) -> Iterator[list[Entry]]:
        """The entries of `paths` as they are ready: first those the driver knows (reused,
        unreadable), then each batch the cluster finishes."""
        ready, rows = self._plan(paths)
        if ready:
            yield ready
        if not rows:
            return
        ray = connect(self.address)
        for batch in self._dataset(ray, rows).iter_batches(batch_size=None,
                                                           batch_format="numpy"):
            yield [self._entry(row) for row in batch_rows(batch)]

    def sort(self, entries: Sequence[Entry]) -> list[Entry]:
        """Entries in the order of the paths given (frames in order), as one process has
        them."""
        return sorted(entries, key=lambda e: self.order.get(e.name, (len(self.order), 0)))


def _digest(path: Path) -> str | OSError:
    try:
        return file_hash(path)
    except OSError as e:
        return e


def _verdict(text: str) -> Verdict:
    return Verdict.from_dict(json.loads(text))
