"""The driver's side of `--engine ray`: what the cluster runs, and what comes back.

The driver (this process) asks the Runner what the cache holds for each file (`lookup`, as
the one-process engine does); only the files still missing cards go to Ray Data: decoded,
then one stage per source in the run's order — each an actor pool whose actors build the
source once (`stages.SourceStage`) — the last stage combining the verdicts. A model's source
asks for the share of a GPU its memory estimate needs (the CPU where the cluster has none); a
remote source's actors share the run's budget, breakers and answer cache (`ledger`). Results
stream back; the driver stores the cards through `Runner.store` (one row per image and
source: a batch Ray runs again after a node died stores the same rows again) and yields
the report entries.

Every node needs Saiten's dependencies, the models at the same paths and the images at the
same path (a shared folder); the `scoring` package itself travels with the job.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.cards import Verdict
from ...core.errors import SourceError
from ...report import Entry
from ..resume_cache import file_hash
from ..runner import NOT_SCORED, Lookup, Part, Runner, unreadable
from .ledger import Ledger
from .stages import (
    Recipe,
    SourceStage,
    Step,
    batch_rows,
    decode,
    dump_cards,
    load_cards,
    signature,
)

INSTALL = 'pip install "comfyui-saiten[ray]"'
"""What `--engine ray` needs (the `ray` extra: Ray Data), said when it is missing."""

PACKAGE = Path(__file__).resolve().parents[2]
"""The `scoring` package: it travels to every worker with the job (`py_modules`)."""

DEFAULT_CARD = 8 << 30
"""GPU memory assumed per card when no worker can say (the smallest card we target)."""

LIGHT_CPUS, MODEL_CPUS, REMOTE_CPUS = 0.25, 0.5, 0.25
"""CPUs each stage's actors reserve at most: fractions, so that every stage keeps a place on
a small cluster (an actor holds its CPUs while idle)."""

THREADS = 1
"""Threads an ONNX model computes with in a CPU actor: up to one actor per CPU runs, so each
takes one core (onnxruntime's default, a spinning thread per core in every actor,
oversubscribes the node)."""

COUNTS_EVERY = 10.0
"""Seconds between the pack's own progress lines (Ray Data draws its own bars)."""

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
    _answers(address)
    if not ray.is_initialized():
        local = {} if address else {"include_dashboard": False}
        try:
            ray.init(address=address, logging_level=logging.WARNING,
                     runtime_env={"py_modules": [str(PACKAGE)], "excludes": ["__pycache__"]},
                     **local)
        except Exception as e:  # no cluster there, ray:// without ray[client], a bad token…
            raise SourceError(f"cannot join the Ray cluster at {address or 'this machine'}: "
                              f"{type(e).__name__}: {_first_line(e)}") from None
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

    def describe(self) -> str:
        """"up to 16 actors, 0.5 CPU and 0.125 GPU each"."""
        gpu = f" and {round(self.gpus, 3):g} GPU" if self.gpus else ""
        return f"up to {self.actors} actors, {round(self.cpus, 3):g} CPU{gpu} each"


def plan_stages(runner: Runner, recipes: Sequence[Recipe], resources: dict[str, float],
                card: Callable[[], int], remote_workers: int | None = None,
                node_cpus: float | None = None) -> list[Stage]:
    """Each source's stage from what it is and what the cluster has: `resources` (Ray's
    totals) and `node_cpus`, the CPUs of its smallest node. One actor of every stage and a
    decoding task fit on any one node, so a run goes on while one node is left (and never
    waits for a place none can give up). A model's source asks for
    its share of a GPU where there are GPUs, else runs up to one actor per CPU; a remote
    one has `remote_workers` actors (default: one per CPU, at least 2)."""
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    fit = (node_cpus or cpus) / (len(recipes) + 1)
    per_cpu = max(1, int(cpus))
    stages = []
    for plan, recipe in zip(runner.plans, recipes, strict=True):
        src = plan.source
        if plan.key is None or src.kind == "check":
            stages.append(Stage("light", recipe, min(LIGHT_CPUS, fit), actors=per_cpu))
        elif "base_url" in src.spec.build:  # a server does the work: no GPU here
            stages.append(Stage("remote", recipe, min(REMOTE_CPUS, fit),
                                actors=remote_workers or max(2, per_cpu)))
        elif gpus > 0:
            share = gpus_for(src.memory_bytes(), card())
            stages.append(Stage("model", recipe, min(MODEL_CPUS, fit), share,
                                max(1, int(gpus / share))))
        else:
            stages.append(Stage("model", recipe, min(MODEL_CPUS, fit), actors=per_cpu))
    return stages


def groups(stages: Sequence[Stage]) -> list[tuple[Stage, list[int]]]:
    """The actor pools that run the stages: (the stage whose resources the pool's actors
    get, the stages it runs by index, in the run's order). Each source with a model or a
    server has a pool of its own; the light ones ride along with the one before them (those
    before the first, with the first): fewer hops between processes, the same order."""
    pools: list[list[int]] = []
    for j, stage in enumerate(stages):
        if pools and (stage.kind == "light" or all(stages[i].kind == "light"
                                                   for i in pools[-1])):
            pools[-1].append(j)
        else:
            pools.append([j])
    return [(next((stages[j] for j in p if stages[j].kind != "light"), stages[p[0]]), p)
            for p in pools]


def _label(stage: Stage) -> str:
    return stage.recipe.label or stage.recipe.name


def node_cpus(ray: Any) -> tuple[float | None, int]:
    """The CPUs of the cluster's smallest live node that has any (None when none says), and
    how many live nodes have CPUs."""
    sizes = [c for n in ray.nodes() if n.get("Alive") and (c := n["Resources"].get("CPU", 0.0))
             > 0]
    return min(sizes, default=None), len(sizes)


@dataclass
class RayEngine:
    """Scores a run's files on a Ray cluster (see the module docstring). `runner` holds the
    run (sources with their cache keys, the cache, settings, counts); `recipes[j]` says how
    a worker builds source j."""

    runner: Runner
    recipes: Sequence[Recipe]
    address: str | None = None
    batch: int = 8
    remote_workers: int | None = None
    log: Log = lambda _: None
    clock: Callable[[], float] = time.monotonic
    unscored: int = field(default=0, init=False)

    # -- the driver's side of the cache -------------------------------------------------
    def _plan(self, paths: Sequence[Path]) -> tuple[list[Entry], list[dict[str, Any]]]:
        """(entries known now: reused or unreadable, one row per file for the cluster)."""
        r, ready, rows = self.runner, [], []
        with ThreadPoolExecutor(4) as pool:  # hashing reads every file: overlap the reads
            digests = list(pool.map(_digest, paths))
        for i, (path, (digest, stat)) in enumerate(zip(paths, digests, strict=True)):
            got = r.lookup(path, digest)
            if isinstance(got, Entry):
                ready.append(got)
                continue
            rows.append({"order": i, "path": str(path), "name": path.name,
                         "digest": got.digest, "stat": json.dumps(stat),
                         "cached": self._cached(got),
                         "meta": json.dumps(got.stored[1], ensure_ascii=False)
                         if got.stored else ""})
        return ready, rows

    def _cached(self, got: Lookup) -> str:
        """The cards the cache holds per frame key of a file (an animated file's frames are
        `digest#k`), as JSON for its row."""
        r, cached = self.runner, {got.digest: got.cards}
        k = 0
        while r.cache is not None and r.cache.image(f"{got.digest}#{k}") is not None:
            cached[f"{got.digest}#{k}"] = r.cached(f"{got.digest}#{k}")
            k += 1
        return json.dumps({key: json.loads(dump_cards(cs)) for key, cs in cached.items()})

    def _entries(self, rows: list[dict[str, Any]]) -> list[Entry]:
        """Result rows as entries (`Runner.frame`, as one process makes them), the cards
        the sources made stored (`Runner.store`)."""
        r, entries, done, at = self.runner, [], [], []
        for row in rows:
            part = Part(str(row["name"]), str(row["key"]), str(row["sha256"]),
                        str(row["path"]), saved=_verdict(row["saved"]) if row["saved"] else None,
                        error=str(row["error"]), broken=bool(row["broken"]))
            thumb = bytes(row["thumb"])
            entry = r.frame(part, json.loads(row["meta"] or "{}"), lambda t=thumb: t,
                            str(row["partial"]))
            if entry.verdict.unscored == NOT_SCORED:
                done.append((part.key, load_cards(row["cards"]), json.loads(row["ran"])))
                at.append(len(entries))
                entry = dataclasses.replace(entry, verdict=_verdict(row["verdict"]))
            entries.append(entry)
        for i, scored in zip(at, r.store(done), strict=True):
            entries[i] = dataclasses.replace(entries[i], origin="" if scored else "cache")
        return entries

    # -- the cluster --------------------------------------------------------------------
    def _dataset(self, ray: Any, rows: list[dict[str, Any]]) -> Any:
        r = self.runner
        smallest, nodes = node_cpus(ray)
        stages = plan_stages(r, self.recipes, ray.cluster_resources(),
                             functools.cache(lambda: card_bytes(ray)), self.remote_workers,
                             smallest)
        budgets = {p.source.label for j, p in enumerate(r.plans) if r.budget(j) is not None}
        ledger = None
        if any(s.kind == "remote" for s in stages):
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                  soft=True)  # beside the driver
            ledger = ray.remote(Ledger).options(num_cpus=0, scheduling_strategy=here).remote(
                {p.source.label: (b.max_calls, b.max_usd) for j, p in enumerate(r.plans)
                 if (b := r.budget(j)) is not None})
        run, pools = r.bare(), groups(stages)
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / self.batch))
        # with the first pool's resources, decoding runs inside its actors (Ray fuses the
        # two); before a GPU pool it stays in CPU tasks. Every pool starts with an actor on
        # each node (one of every stage fits on any node: `plan_stages`), spread (Ray would
        # pack them beside the driver first), and grows as far as the resources allow.
        labels = r.labels
        ds = ds.map_batches(decode, batch_size=self.batch, num_cpus=pools[0][0].cpus,
                            scheduling_strategy="SPREAD",
                            fn_kwargs={"sources": len(stages), "max_bytes": r.max_bytes,
                                       "labels": None if labels is None else frozenset(labels)})
        for n, (lead, pool) in enumerate(pools):
            steps = [Step(j, stages[j].recipe, label if (label := _label(stages[j])) in budgets
                          and stages[j].kind == "remote" else "") for j in pool]
            self.log(f"ray: {', '.join(_label(stages[j]) for j in pool)}: {lead.describe()}")
            ds = ds.map_batches(
                SourceStage, batch_size=self.batch, num_cpus=lead.cpus,
                num_gpus=lead.gpus or None, scheduling_strategy="SPREAD",
                compute=ray.data.ActorPoolStrategy(
                    min_size=1, max_size=lead.actors,
                    initial_size=max(1, min(lead.actors, nodes))),
                fn_constructor_kwargs={
                    "steps": steps, "run": run, "last": n == len(pools) - 1,
                    "ledger": ledger if lead.kind == "remote" else None,
                    "threads": 0 if lead.gpus else THREADS})
        return ds

    def entries(self, paths: Sequence[Path]) -> Iterator[tuple[list[Entry], int]]:
        """(entries, files they are from) as they are ready: first those the driver knows
        (reused from the cache, unreadable), then each batch the cluster finishes."""
        ready, rows = self._plan(paths)
        self.unscored = sum(e.verdict.unscored is not None for e in ready)
        if ready:
            yield ready, len(ready)
        if not rows:
            self.log("ray: nothing new for the Ray cluster: every file's cards are cached")
            return
        where = self.address or "this machine"
        self.log(f"ray: {len(rows)} of {len(paths)} files go to the Ray cluster at {where}")
        files: set[int] = set()
        shown = self.clock()
        try:
            ray = connect(self.address)
            for batch in _stream(self._dataset(ray, rows)):
                got = batch_rows(batch)
                new = {int(row["order"]) for row in got} - files
                files |= new
                entries = self._entries(got)
                self.unscored += sum(e.verdict.unscored is not None for e in entries)
                yield entries, len(new)
                if self.clock() - shown >= COUNTS_EVERY:
                    shown = self.clock()
                    self.log(self.counts(len(ready) + len(files), len(paths)))
        except SourceError as e:  # no cluster, or it gave up: what did not come back is
            left = [row for row in rows if int(row["order"]) not in files]  # unscored, saying so
            self.unscored += len(left)
            yield [Entry(row["name"], unreadable(f"not scored: {e}")) for row in left], len(left)
            raise
        finally:
            self.log(self.counts(len(ready) + len(files), len(paths)))
            if require_ray().is_initialized():
                require_ray().shutdown()

    def counts(self, done: int, total: int) -> str:
        """The pack's own progress line: files back, and how their images went."""
        c = self.runner.counts
        return (f"ray: {done}/{total} files: {c.scored} scored, {c.reused} reused, "
                f"{self.unscored} unscored")


def _answers(address: str | None, timeout: float = 10.0) -> None:
    """A SourceError at once when nothing listens at a "HOST:PORT" address (Ray itself
    would keep retrying for minutes)."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise SourceError(f"nothing answers at {address} ({e}): is `ray start --head` running "
                          "there, and its port open to this machine?") from None


def _stream(ds: Any) -> Iterator[dict[str, Any]]:
    """The dataset's result batches; a run Ray gives up on (after its retries) is a
    SourceError saying why."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except Exception as e:
        raise SourceError(f"the Ray run stopped: {type(e).__name__}: {_first_line(e)}") \
            from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _digest(path: Path) -> tuple[str | None, list[int] | None]:
    """The file's content hash and `signature` (None when it cannot be read: `lookup` says
    why)."""
    try:
        before = signature(path)
        digest = file_hash(path)
        return (digest, before) if signature(path) == before else (None, None)
    except OSError:
        return None, None


def _verdict(text: str) -> Verdict:
    return Verdict.from_dict(json.loads(text))
