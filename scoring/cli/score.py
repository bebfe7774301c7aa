"""`score`, `watch` and `demo`: score files into a report folder, resuming from its cache.

Each prints a table and writes report.jsonl / report.csv / report.html in --out, beside the
score cache (scores.sqlite) that lets the next run resume. An unreadable file becomes an
unscored row with the reason; a source that cannot run abstains with its reason; neither
stops the run. `score --engine ray` runs the same on a Ray cluster (`ray_engine`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..batch.comfy_neighbour import Beside
from ..batch.comfy_neighbour import neighbour as comfy_neighbour
from ..batch.memory import CliMemory
from ..batch.ray_engine import RayEngine, Recipe, require_ray
from ..batch.resume_cache import ScoreCache, key_for
from ..batch.runner import Planned, Runner
from ..batch.session import Progress, Session
from ..core.cards import LIKENESS
from ..core.errors import SourceError
from ..core.images import IMAGE_SUFFIXES, list_images
from ..core.rubric import Rubric
from ..ensemble.aggregate import AggregateSettings
from ..ensemble.calibrate import Calibration
from ..ensemble.select import Rule
from ..host.memory import MemoryPolicy
from ..host.pack import SAMPLES
from ..report import Entry, notes
from ..report.entries import axes_of
from ..sources import OFFLINE_DEFAULT, Source, Unavailable, create, unavailable
from ..sources.vlm.files import vlm_files
from .options import engine_options, overnight_options, scoring_options, sources_option

SHORT = {"erotic": "ero", "composition": "comp", "appeal": "appl", "typeset": "type",
         "overall": "over", LIKENESS: "like"}
VLM_FILES = ("vlm-transformers", "vlm-llamacpp")


def _vlm_options(name: str, opts: dict[str, Any], roots: Sequence[str | Path]) -> dict[str, Any]:
    """`--option vlm-llamacpp.model=NAME` (a path, or a name under --models): the files the
    node's loader would pick for it (a GGUF's paired mmproj unless `mmproj` is given);
    `--option aesthetic.model=NAME` / `aesthetic-head.head=NAME`: the anime_aesthetic folder
    or head file of that name under --models, as the nodes list them."""
    if name == "aesthetic" and "model" in opts:
        opts = dict(opts)
        return {"model_path": str(_under(str(opts.pop("model")), roots, "model.onnx")), **opts}
    if name == "aesthetic-head" and "head" in opts:
        opts = dict(opts)
        head = _under(str(opts.pop("head")), roots, "")
        if head.is_dir():  # a known head's folder: its one weight file
            files = [p for p in head.iterdir() if p.suffix in (".pth", ".safetensors")]
            head = files[0] if len(files) == 1 else head
        return {"head_path": str(head), **opts}
    if name not in VLM_FILES or "model" not in opts:
        return opts
    opts = dict(opts)
    runtime, files = vlm_files(str(opts.pop("model")), opts.pop("mmproj", None), roots)
    if runtime != name:
        raise SourceError(f"{name}: {files} is a model for {runtime}")
    return {**files, **opts}


def _under(name: str, roots: Sequence[str | Path], inside: str) -> Path:
    """`name` as a path, or as a name under one of `roots` (its `inside` file when given)."""
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    for base in (direct, *(Path(r) / name for r in roots)):
        if (base / inside).exists() if inside else base.exists():
            return base
    raise SourceError(f"{name!r} not found under {', '.join(map(str, roots)) or '(no --models)'}")


def make_sources(names: Sequence[str], log: Callable[[str], None],
                 options: dict[str, dict[str, Any]] | None = None,
                 roots: Sequence[str | Path] = (),
                 memory: MemoryPolicy | None = None) -> list[Source]:
    """Create each named source with its `--option`s (build options and its default run
    options) and the memory policy; one that fails becomes an `Unavailable` with the
    reason."""
    out: list[Source] = []
    for name in names:
        try:
            out.append(create(name, memory=memory,
                              **_vlm_options(name, (options or {}).get(name, {}), roots)))
        except Exception as e:
            why = f"cannot start: {type(e).__name__}: {e}"
            if isinstance(e, TypeError) and "required keyword-only argument" in str(e):
                missing = str(e).rsplit(":", 1)[-1].strip().strip("'")
                why += f" (pass --option {name}.{missing}=...)"
            log(f"saiten: source {name} {why}")
            out.append(unavailable(name, why))
    return out


def score_paths(paths: Sequence[Path], sources: Sequence[Source],
                settings: AggregateSettings, batch: int = 8, repeats: int = 1, *,
                rubric: Rubric | None = None,
                calibrations: Sequence[Calibration] = ()) -> list[Entry]:
    """Every file's entry, in order, scored in batches of `batch` with no cache (what
    `score` runs, as a library call); unreadable files become unscored entries."""
    runner = Runner([Planned(s, None) for s in sources], settings,
                    rubric=rubric or Rubric.default(), calibrations=calibrations,
                    repeats=repeats)
    return [e for i in range(0, len(paths), batch) for e in runner.batch(paths[i:i + batch])]


def _fmt(x: float | None, width: int, digits: int = 0) -> str:
    return f"{'-' if x is None else f'{x:.{digits}f}':>{width}}"


def format_table(entries: Sequence[Entry], width: int = 30) -> str:
    """The stdout table: file, score, each axis (likeness when scored), confidence, the
    publish verdict (when a check ran), used sources, notes."""
    axes = axes_of(entries)
    publish = any(e.verdict.decision and e.verdict.decision.publish for e in entries)
    head = (f"{'file':<{width}} {'score':>5} "
            + " ".join(f"{SHORT[a]:>4}" for a in axes) + f" {'conf':>4}  "
            + (f"{'publish':<11} " if publish else "") + f"{'used':<20} notes")
    lines = [head, "-" * len(head)]
    for e in entries:
        v = e.verdict
        name = e.name if len(e.name) <= width else "…" + e.name[-(width - 1):]
        state = (v.decision.publish if v.decision else "") or "-"
        lines.append(f"{name:<{width}} {_fmt(v.score, 5, 1)} "
                     + " ".join(_fmt(v.value(a), 4) for a in axes)
                     + f" {v.confidence:4.2f}  " + (f"{state:<11} " if publish else "")
                     + f"{','.join(v.used):<20} {'; '.join(notes(v))}")
    return "\n".join(lines)


def _plans(sources: Sequence[Source], rubric: Rubric, repeats: int) -> list[Planned]:
    """Each source with its resume-cache key (the keys of the sources before it included:
    the judge and VLM prompts read their cards); a stand-in is never cached."""
    plans, keys = [], []
    for source in sources:
        key = None if isinstance(source, Unavailable) else \
            key_for(source, repeats, rubric.to_toml(), keys)
        keys.append(key or source.label)
        plans.append(Planned(source, key))
    return plans


def _run(paths: Sequence[Path] | Path, args: argparse.Namespace, names: Sequence[str],
         title: str) -> int:
    """Score `paths` (or watch the folder `paths`) into the report in `--out`."""
    on_ray = getattr(args, "engine", "local") == "ray"
    progress = Progress(None if isinstance(paths, Path) else len(paths), show=not on_ray)
    beside = Beside(None if on_ray else comfy_neighbour(args.comfy), max_wait=args.comfy_wait,
                    log=progress.log, show=progress.waiting)
    if beside.neighbour is not None:
        progress.log(f"beside ComfyUI at {beside.neighbour.url}: waiting while it generates, "
                     "asking it to free memory before loading (--comfy off to disable)")
    options: dict[str, dict[str, Any]] = {}
    for source, name, value in args.option:
        options.setdefault(source, {})[name] = value
    memory = CliMemory(beside.make_room, beside.free_again)
    sources = make_sources(names, progress.log, options, args.models, memory)
    rubric = args.rubric or Rubric.default()
    with ScoreCache(args.out) as cache:
        runner = Runner(_plans(sources, rubric, args.repeats), args.settings, rubric=rubric,
                        calibrations=args.calibration.calibrations, repeats=args.repeats,
                        rule=Rule(threshold=args.pass_score,
                                  character=args.require_character,
                                  publish=args.require_publishable), cache=cache,
                        rescore=args.rescore, beside=beside)
        session = Session(runner, args.out, title, progress)
        failed = False
        if isinstance(paths, Path):
            session.watch(paths, args.batch, idle_exit=args.idle_exit, settle=args.settle)
        else:
            engine = RayEngine(runner, [Recipe.of(s) for s in sources], args.address,
                               args.batch, args.remote_workers, progress.log) if on_ray else None
            try:
                session.score(paths, args.batch, engine)
            except SourceError as e:  # the cluster cannot be reached, or gave up on the run
                progress.log(f"error: {e} (the images it did not score are unscored rows "
                             "of the report; the next run scores them)")
                failed = True
        entries = list(session.entries.values())
        print(format_table(entries))
        written = session.write(force=True) or {}
    scored = sum(e.verdict.scored for e in entries)
    print(f"\n{scored} of {len(entries)} images scored with {', '.join(names)}; "
          f"{session.note()} Wrote " + ", ".join(str(p) for p in written.values()))
    return 1 if failed else 130 if session.interrupted else 0


def cmd_score(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        try:
            require_ray()
        except SourceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    folder = Path(args.folder)
    if folder.is_file():
        paths = [folder]
    elif folder.is_dir():
        paths = list_images(folder)
    else:
        print(f"error: {folder} does not exist", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: no images in {folder} (looked for {' '.join(IMAGE_SUFFIXES)})",
              file=sys.stderr)
        return 1
    return _run(paths, args, args.sources, f"Saiten report: {folder.name}")


def cmd_watch(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    return _run(folder, args, args.sources, f"Saiten report: {folder.name}")


def cmd_demo(args: argparse.Namespace) -> int:
    folder = Path(args.samples)
    paths = list_images(folder) if folder.is_dir() else []
    if not paths:
        print(f"error: no sample images in {folder}; pass --samples DIR", file=sys.stderr)
        return 2
    print(f"Scoring {len(paths)} sample images in {folder} with the offline default "
          f"({', '.join(OFFLINE_DEFAULT)}); nothing is downloaded.\n")
    return _run(paths, args, list(OFFLINE_DEFAULT), "Saiten demo")


def add_command(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score", help="score every image in a folder")
    s.add_argument("folder", help="a folder of images (or one image file)")
    sources_option(s)
    scoring_options(s)
    overnight_options(s)
    engine_options(s)
    s.set_defaults(func=cmd_score)

    w = sub.add_parser("watch", help="score every image that lands in a folder, as it lands")
    w.add_argument("folder", help="the folder to watch (e.g. ComfyUI/output)")
    sources_option(w)
    w.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="stop after this long with no new file (default: run until Ctrl-C)")
    w.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="a file is complete once unchanged this long (default 2)")
    scoring_options(w)
    overnight_options(w)
    w.set_defaults(func=cmd_watch)

    d = sub.add_parser("demo", help="score the embedded samples offline")
    d.add_argument("--samples", default=str(SAMPLES), help="sample folder (default: bundled)")
    scoring_options(d)
    overnight_options(d)
    d.set_defaults(func=cmd_demo)
