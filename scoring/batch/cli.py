"""`python -m scoring`: score a folder, the embedded samples, or compare with your ratings.

    python -m scoring score <folder> [--sources nudenet,technical] [--out DIR]
        [--option wd.model_path=/models/wd-eva02-large-tagger-v3]
        [--comfy URL|off] [--comfy-wait SECONDS] [--rescore]
    python -m scoring watch <folder> [same options] [--idle-exit SECONDS]
    python -m scoring demo [--out DIR] [--samples DIR]
        [--rubric my_rubric.toml] [--calibration cal.json]
    python -m scoring calibrate <report.jsonl> <ratings.csv> [--axis overall] [--scale 1,5]
        [--out cal.json]
    python -m scoring rubric > my_rubric.toml     # the default rubric, to edit
    python -m scoring doctor [--json]             # what this Python can run, and fixes

`score`, `watch` and `demo` print a table and write report.jsonl / report.csv / report.html
in --out, beside the score cache (scores.sqlite) that lets the next run resume.
An unreadable file becomes an unscored row with the reason; a source that cannot run
abstains with its reason; neither stops the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.cards import AXES
from ..core.errors import SourceError
from ..core.images import IMAGE_SUFFIXES, list_images
from ..core.rubric import Rubric
from ..ensemble.aggregate import AggregateSettings, parse_weights
from ..ensemble.calibrate import (
    Calibration,
    compare,
    load_calibrations,
    load_ratings,
    save_calibrations,
)
from ..host import doctor
from ..host.memory import MemoryPolicy
from ..host.pack import SAMPLES
from ..report import Entry, notes, read_jsonl
from ..sources import OFFLINE_DEFAULT, REGISTRY, Source, Unavailable, create, unavailable
from ..sources.vlm.files import vlm_files
from .comfy_neighbour import DEFAULT_URL
from .comfy_neighbour import neighbour as comfy_neighbour
from .memory import CliMemory
from .resume_cache import ScoreCache, key_for
from .runner import Planned, Runner
from .session import Session

SHORT = {"erotic": "ero", "composition": "comp", "appeal": "appl", "typeset": "type",
         "overall": "over"}


VLM_FILES = ("vlm-transformers", "vlm-llamacpp")


def _vlm_options(name: str, opts: dict[str, Any], roots: Sequence[str | Path]) -> dict[str, Any]:
    """`--option vlm-llamacpp.model=NAME` (a path, or a name under --models): the files the
    node's loader would pick for it (a GGUF's paired mmproj unless `mmproj` is given)."""
    if name not in VLM_FILES or "model" not in opts:
        return opts
    opts = dict(opts)
    runtime, files = vlm_files(str(opts.pop("model")), opts.pop("mmproj", None), roots)
    if runtime != name:
        raise SourceError(f"{name}: {files} is a model for {runtime}")
    return {**files, **opts}


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


def score_paths(paths: Sequence[Path], sources: Sequence[Source | Unavailable],
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
    """The stdout table: file, score, each axis, confidence, used sources, notes."""
    head = (f"{'file':<{width}} {'score':>5} "
            + " ".join(f"{SHORT[a]:>4}" for a in AXES) + f" {'conf':>4}  {'used':<20} notes")
    lines = [head, "-" * len(head)]
    for e in entries:
        v = e.verdict
        name = e.name if len(e.name) <= width else "…" + e.name[-(width - 1):]
        lines.append(f"{name:<{width}} {_fmt(v.score, 5, 1)} "
                     + " ".join(_fmt(v.value(a), 4) for a in AXES)
                     + f" {v.confidence:4.2f}  {','.join(v.used):<20} {'; '.join(notes(v))}")
    return "\n".join(lines)


def _runner(args: argparse.Namespace, names: Sequence[str],
            log: Callable[[str], None]) -> Runner:
    """The sources of the run, each with its cache key, beside the ComfyUI of `--comfy`."""
    options: dict[str, dict[str, Any]] = {}
    for source, name, value in args.option:
        options.setdefault(source, {})[name] = value
    rubric = args.rubric or Rubric.default()
    memory = CliMemory()
    sources = make_sources(names, log, options, args.models, memory)
    plans, keys = [], []
    for name, source in zip(names, sources, strict=True):
        key = None
        if not isinstance(source, Unavailable):
            build = _vlm_options(name, options.get(name, {}), args.models)
            key = key_for(source, build, args.repeats, rubric.to_toml(), keys)
        keys.append(key or name)
        plans.append(Planned(source, key))
    settings = AggregateSettings(k=args.k, min_sources=args.min_sources, weights=args.weights)
    runner = Runner(plans, settings, rubric=rubric, calibrations=args.calibration,
                    repeats=args.repeats, rescore=args.rescore,
                    neighbour=comfy_neighbour(args.comfy), comfy_wait=args.comfy_wait, log=log)
    memory.make_room, memory.free_again = runner.make_room, runner.free_again
    return runner


def _run(paths: Sequence[Path] | Path, args: argparse.Namespace, names: Sequence[str],
         title: str) -> int:
    """Score `paths` (or watch the folder `paths`) into the report in `--out`."""
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with ScoreCache(args.out) as cache:
        runner = _runner(args, names, log)
        runner.cache = cache
        if runner.neighbour is not None:
            log(f"beside ComfyUI at {runner.neighbour.url}: waiting while it generates, "
                "asking it to free memory before loading (--comfy off to disable)")
        session = Session(runner, args.out, title)
        if isinstance(paths, Path):
            session.watch(paths, args.batch, idle_exit=args.idle_exit, settle=args.settle)
        else:
            session.score(paths, args.batch)
        entries = list(session.entries.values())
        print(format_table(entries))
        written = session.write(force=True) or {}
    scored = sum(e.verdict.scored for e in entries)
    print(f"\n{scored} of {len(entries)} images scored with {', '.join(names)}; "
          f"{session.note()} Wrote " + ", ".join(str(p) for p in written.values()))
    return 130 if session.interrupted else 0


def _source_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise argparse.ArgumentTypeError(f"unknown source(s) {given}; known: {', '.join(REGISTRY)}")
    return names


def _weights(text: str) -> dict[str, float]:
    try:
        return parse_weights(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _option(text: str) -> tuple[str, str, Any]:
    """"wd.model_path=/models/wd" → ("wd", "model_path", "/models/wd"); numbers and
    true/false are converted."""
    key, sep, raw = text.partition("=")
    source, dot, name = key.strip().partition(".")
    if not (sep and dot and source and name.isidentifier()):
        raise argparse.ArgumentTypeError(
            f"--option wants SOURCE.NAME=VALUE, e.g. wd.model_path=/models/wd; got {text!r}")
    value: Any = raw.strip()
    if value.lower() in ("true", "false"):
        value = value.lower() == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
    return source, name, value


def _scale(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale wants 'low,high', e.g. 1,5; got {text!r}") \
            from None
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"--scale: high must exceed low, got {text!r}")
    return lo, hi


def _rubric_file(text: str) -> Rubric:
    try:
        return Rubric.load(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror or e}") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _calibration_file(text: str) -> list[Calibration]:
    try:
        return load_calibrations(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror or e}") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_score(args: argparse.Namespace) -> int:
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


def cmd_calibrate(args: argparse.Namespace) -> int:
    try:
        rows = read_jsonl(args.report)
        ratings = load_ratings(args.ratings)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fits = compare(rows, ratings, args.axis, args.scale)
    matched = max((f.n for f in fits), default=0)
    print(f"{matched} of {len(rows)} report rows matched a rating ({len(ratings)} ratings); "
          f"axis {args.axis}\n")
    if not fits:
        print("error: no report row matched a rated file name", file=sys.stderr)
        return 1
    print(f"{'source':<20} {'n':>4} {'spearman':>9} {'slope':>8} {'intercept':>10}")
    for f in fits:
        rho = "-" if f.spearman is None else f"{f.spearman:+.3f}"
        cal = f.calibration
        slope, icpt = ("-", "-") if cal is None else (f"{cal.slope:.3f}", f"{cal.intercept:.2f}")
        print(f"{f.source:<20} {f.n:>4} {rho:>9} {slope:>8} {icpt:>10}")
    if args.out:
        print(f"\nwrote {save_calibrations(args.out, fits)}")
    return 0


def cmd_rubric(args: argparse.Namespace) -> int:
    """Print the default rubric as TOML (UTF-8 whatever the console's encoding)."""
    text = Rubric.default().to_toml()
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(text)
    else:
        sys.stdout.flush()
        out.write(text.encode("utf-8"))
        out.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoring", description="Saiten (採点): score "
                                "images with an ensemble of local sources.")
    sub = p.add_subparsers(dest="command", required=True)

    def scoring_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default="saiten-out", help="report folder (default %(default)s)")
        sp.add_argument("--min-sources", type=int, default=2, help="fewer → unscored")
        sp.add_argument("--k", type=float, default=2.5, help="outlier cut in MADs")
        sp.add_argument("--weights", type=_weights, default={},
                        help="override the catalogue's weights, e.g. 'wd=0.8, grok=1.1'")
        sp.add_argument("--repeats", type=int, default=1, help="runs per sampling source")
        sp.add_argument("--batch", type=int, default=8, help="images per batch")
        sp.add_argument("--option", type=_option, action="append", default=[],
                        metavar="SOURCE.NAME=VALUE",
                        help="a source option, e.g. wd.model_path=/models/wd or "
                             "vlm-llamacpp.model=NAME (repeatable)")
        sp.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="a folder of VLMs: vlm-*.model=NAME is looked up there, a GGUF "
                             "paired with its mmproj as the node does (repeatable)")
        sp.add_argument("--rubric", type=_rubric_file, default=None, metavar="FILE.toml",
                        help="the rubric every VLM and the judge use (start from "
                             "`python -m scoring rubric`)")
        sp.add_argument("--calibration", type=_calibration_file, default=[],
                        metavar="cal.json", help="apply the fits `calibrate --out` wrote to "
                        "each source's scores before combining")

    def overnight_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--comfy", default=None, metavar="URL|off",
                        help=f"the ComfyUI beside this run (default {DEFAULT_URL} when it "
                        "answers): wait while it generates, make it free memory first")
        sp.add_argument("--comfy-wait", type=float, default=15 * 60, metavar="SECONDS",
                        help="wait at most this long for a busy ComfyUI (default 900)")
        sp.add_argument("--rescore", action="store_true",
                        help="ignore the score cache in --out (and verdicts saved in PNGs)")

    s = sub.add_parser("score", help="score every image in a folder")
    s.add_argument("folder", help="a folder of images (or one image file)")
    s.add_argument("--sources", type=_source_names, default=list(OFFLINE_DEFAULT),
                   help=f"comma-separated (default {','.join(OFFLINE_DEFAULT)})")
    scoring_options(s)
    overnight_options(s)
    s.set_defaults(func=cmd_score)

    w = sub.add_parser("watch", help="score every image that lands in a folder, as it lands")
    w.add_argument("folder", help="the folder to watch (e.g. ComfyUI/output)")
    w.add_argument("--sources", type=_source_names, default=list(OFFLINE_DEFAULT),
                   help=f"comma-separated (default {','.join(OFFLINE_DEFAULT)})")
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

    c = sub.add_parser("calibrate", help="compare a report with your own ratings")
    c.add_argument("report", help="report.jsonl written by score/demo")
    c.add_argument("ratings", help="CSV with file,rating")
    c.add_argument("--axis", default="overall", help="axis to compare (default overall)")
    c.add_argument("--scale", type=_scale, default=None, help="rating scale low,high")
    c.add_argument("--out", default=None, help="write calibration JSON here")
    c.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("rubric", help="print the default rubric as TOML, to edit")
    r.set_defaults(func=cmd_rubric)
    doctor.add_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for key in ("min_sources", "repeats", "batch"):
        if getattr(args, key, 1) < 1:
            build_parser().error(f"--{key.replace('_', '-')} must be at least 1")
    if getattr(args, "k", 1.0) <= 0:
        build_parser().error("--k must be positive")
    for key in ("comfy_wait", "idle_exit", "settle"):
        if (getattr(args, key, None) or 0) < 0:
            build_parser().error(f"--{key.replace('_', '-')} must not be negative")
    return args.func(args)
