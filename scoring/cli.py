"""`python -m scoring`: score a folder, the embedded samples, or compare with your ratings.

    python -m scoring score <folder> [--sources nudenet,technical] [--out DIR]
        [--option wd.model_path=/models/wd-eva02-large-tagger-v3]
    python -m scoring demo [--out DIR] [--samples DIR]
        [--rubric my_rubric.toml] [--calibration cal.json]
    python -m scoring calibrate <report.jsonl> <ratings.csv> [--axis overall] [--scale 1,5]
        [--out cal.json]
    python -m scoring rubric > my_rubric.toml     # the default rubric, to edit

`score` and `demo` print a table and write report.jsonl / report.csv / report.html.
An unreadable file becomes an unscored row with the reason; a source that cannot run
abstains with its reason; neither stops the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .aggregate import AggregateSettings, combine_sheet, parse_weights
from .calibrate import (
    Calibration,
    apply_calibrations,
    compare,
    load_calibrations,
    load_ratings,
    save_calibrations,
)
from .cards import AXES, Sheet, Verdict, merge_sheets
from .errors import SourceError
from .images import IMAGE_SUFFIXES, Image, list_images, load_frames
from .models import vlm_files
from .report import Entry, notes, read_jsonl, thumbnail, write_report
from .rubric import Rubric
from .sources import OFFLINE_DEFAULT, REGISTRY, Cancelled, ScoreContext, Source, Unavailable, create

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
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
                 roots: Sequence[str | Path] = ()) -> list[Source]:
    """Create each named source with its `--option`s (build options and its default run
    options); one that fails becomes an `Unavailable` with the reason."""
    out: list[Source] = []
    for name in names:
        try:
            out.append(create(name, **_vlm_options(name, (options or {}).get(name, {}), roots)))
        except Exception as e:
            why = f"cannot start: {type(e).__name__}: {e}"
            if isinstance(e, TypeError) and "required keyword-only argument" in str(e):
                missing = str(e).rsplit(":", 1)[-1].strip().strip("'")
                why += f" (pass --option {name}.{missing}=...)"
            log(f"saiten: source {name} {why}")
            out.append(Unavailable.of(name, why))
    return out


def unreadable(reason: str) -> Verdict:
    return Verdict(axes=dict.fromkeys(AXES), confidence=0.0, used=[], dropped={}, cards=[],
                   unscored=reason)


def _score_with(source: Source, images: list[Image], repeats: int,
                prior: Sheet | None, rubric: Rubric | None = None) -> Sheet:
    """The source's sheet; a source that breaks its contract abstains instead of crashing.
    `prior` holds the earlier sources' cards (the judge and VLM prompts read them)."""
    ctx = ScoreContext(repeats=repeats, prior=prior, rubric=rubric or Rubric.default())
    try:
        return source.score(images, ctx)
    except Cancelled:
        raise
    except Exception as e:
        why = f"failed: {type(e).__name__}: {e}"
        return Unavailable(source.name, why, kind=source.kind, provides=tuple(source.provides),
                           label=source.label).score(images)


def iter_scores(paths: Sequence[Path], sources: Sequence[Source],
                settings: AggregateSettings, batch: int = 8, repeats: int = 1,
                log: Callable[[str], None] = lambda _: None, *, rubric: Rubric | None = None,
                calibrations: Sequence[Calibration] = ()) -> Iterator[Entry]:
    """Score files in batches of `batch`, yielding one entry per file in order (one per
    frame of an animated file, named `file#k`, as LoadImage reads them); unreadable files
    become unscored entries. Every source sees `rubric`; `calibrations` apply to the cards
    before they are combined."""
    for start in range(0, len(paths), batch):
        chunk = paths[start:start + batch]
        images: list[Image] = []
        slots: list[tuple[str, Entry | None]] = []
        for p in chunk:
            try:
                frames = load_frames(p)
            except Exception as e:  # BadImage, or anything else PIL throws at a broken file
                msg = str(e) if p.name in str(e) else f"{p.name}: cannot read image ({e})"
                slots.append((p.name, Entry(p.name, unreadable(msg))))
                continue
            images += frames
            slots += [(p.name if len(frames) == 1 else f"{p.name}#{k}", None)
                      for k in range(len(frames))]
        sheet: Sheet = [[] for _ in images]
        for source in sources if images else ():
            sheet = merge_sheets(sheet, _score_with(source, images, repeats, sheet, rubric))
        if calibrations:
            sheet = [apply_calibrations(cards, calibrations) for cards in sheet]
        verdicts = iter(combine_sheet(sheet, settings))
        pics = iter(images)
        for name, slot in slots:
            yield slot or Entry(name, next(verdicts), thumbnail(next(pics)))
        log(f"scored {min(start + batch, len(paths))}/{len(paths)}")


def score_paths(paths: Sequence[Path], sources: Sequence[Source],
                settings: AggregateSettings, batch: int = 8, repeats: int = 1,
                log: Callable[[str], None] = lambda _: None) -> list[Entry]:
    """Every file's entry (see `iter_scores`)."""
    return list(iter_scores(paths, sources, settings, batch, repeats, log))


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


def _run(paths: Sequence[Path], args: argparse.Namespace, names: Sequence[str],
         title: str) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    settings = AggregateSettings(k=args.k, min_sources=args.min_sources, weights=args.weights)
    options: dict[str, dict[str, Any]] = {}
    for source, name, value in args.option:
        options.setdefault(source, {})[name] = value
    sources = make_sources(names, log, options, args.models)
    entries: list[Entry] = []
    code = 0
    try:
        for entry in iter_scores(paths, sources, settings, args.batch, args.repeats, log,
                                 rubric=args.rubric, calibrations=args.calibration):
            entries.append(entry)
    except (KeyboardInterrupt, Cancelled):
        log(f"interrupted: reporting the {len(entries)} images scored so far")
        code = 130
    finally:
        for s in sources:
            s.unload()
    print(format_table(entries))
    written = write_report(args.out, entries, title)
    scored = sum(e.verdict.scored for e in entries)
    print(f"\n{scored} of {len(entries)} images scored with {', '.join(names)}; wrote "
          + ", ".join(str(p) for p in written.values()))
    return code


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

    s = sub.add_parser("score", help="score every image in a folder")
    s.add_argument("folder", help="a folder of images (or one image file)")
    s.add_argument("--sources", type=_source_names, default=list(OFFLINE_DEFAULT),
                   help=f"comma-separated (default {','.join(OFFLINE_DEFAULT)})")
    scoring_options(s)
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("demo", help="score the embedded samples offline")
    d.add_argument("--samples", default=str(SAMPLES), help="sample folder (default: bundled)")
    scoring_options(d)
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for key in ("min_sources", "repeats", "batch"):
        if getattr(args, key, 1) < 1:
            build_parser().error(f"--{key.replace('_', '-')} must be at least 1")
    if getattr(args, "k", 1.0) <= 0:
        build_parser().error("--k must be positive")
    return args.func(args)
