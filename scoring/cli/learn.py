"""`python -m scoring learn ratings.csv [report]`: fit a profile to your ratings and show,
before you adopt it, whether it beats the defaults on images it was not fit on.

    python -m scoring learn ratings.csv [report.jsonl | report folder] [--out profile.json]
        [--axis overall] [--scale 1,5] [--folds 5] [--seed 0]

The report defaults to the folder the ratings file names (its `# report:` line, which the page
and the ComfyUI route write), else the ratings file's folder. The profile is written in any case (to
`--out`, default `profile.json` beside the ratings): the learned one when it wins on held-out
images, else the defaults with the figures that kept them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.cards import Verdict
from ..ensemble import ratings as ratings_csv
from ..ensemble.learn import Interval, Learned, Rated, learn
from ..ensemble.profile import save_profile
from ..report import read_entries
from .options import scale

REPORT = "report.jsonl"
MORE_LIMIT = 2000
"""Past this many more ratings, "how many more" is no estimate worth printing."""


def report_rows(path: Path) -> list[tuple[str, str, Verdict]]:
    """(file name, content sha256 or "", verdict) per row of a report (report.jsonl, or the
    folder holding it)."""
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"no {REPORT} in {path}: give the report folder that `score --out` "
                         "or the Batch Report node wrote (or its report.jsonl)")
    return [(e.name, e.sha256, e.verdict) for e in read_entries(file)]


def _rho(x: Interval) -> str:
    if x.value is None:
        return f"{'-':>6}  {'':<16}"
    span = "" if x.low is None else f"[{x.low:+.2f}, {x.high:+.2f}]"
    return f"{x.value:+6.2f}  {span:<16}"


def format_result(got: Learned) -> str:
    """The table and the verdict a user reads before adopting the profile."""
    pct = f"{got.level * 100:.0f}%"
    lines = [f"held-out Spearman ρ against your ratings ({got.folds}-fold cross-validation, "
             f"{pct} bootstrap interval):", "",
             f"{'':<24} {'n':>5} {'ρ':>6}  interval"]
    rows: list[tuple[str, Interval]] = [(f"source {s}", i) for s, i in got.sources.items()]
    rows += [("default ensemble", got.default), ("learned profile", got.learned),
             ("gain (learned − default)", got.gain)]
    lines += [f"{name:<24} {i.n:>5} {_rho(i)}".rstrip() for name, i in rows]
    lines.append("")
    g = got.gain
    if got.adopted:
        lines.append(f"The learned profile ranks images it was not fit on better than the "
                     f"defaults: ρ {got.learned.value:+.2f} vs {got.default.value:+.2f}, "
                     f"gain {g.value:+.2f} [{g.low:+.2f}, {g.high:+.2f}] over {got.n} ratings.")
        lines.append(f"About {3 * got.n} more ratings would halve the interval.")
    else:
        gain = "-" if g.value is None else f"{g.value:+.2f}"
        span = "" if g.low is None else f" [{g.low:+.2f}, {g.high:+.2f}]"
        lines.append(f"Not better than the defaults on held-out images (gain {gain}{span}, "
                     f"{got.n} ratings): keeping the defaults.")
        if got.more is not None and got.more <= MORE_LIMIT:
            lines.append(f"If the gain holds, about {got.more} more ratings would show it "
                         "(the page's \"rate next\" picks the images that teach most).")
        else:
            lines.append("No sign yet that other weights would help: rate the images where "
                         "the sources disagree (the page's \"rate next\") to find out.")
    fit = got.fitted
    lines.append(("Adopted" if got.adopted else "Fitted (not adopted)") + ": "
                 + fit.describe() + ".")
    return "\n".join(lines)


def cmd_learn(args: argparse.Namespace) -> int:
    ratings_path = Path(args.ratings)
    try:
        report = Path(args.report) if args.report else (
            ratings_csv.report_of(ratings_path) or ratings_path.parent)
        given = ratings_csv.read(ratings_path)
        rows = report_rows(report)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    matched = ratings_csv.match(rows, given)
    by_hash = sum(1 for r, _ in matched if r.sha256)
    print(f"{len(matched)} of {len(given)} ratings matched a row of {report} "
          f"({by_hash} by content hash); axis {args.axis}")
    if not matched:
        print("error: no rating matched a report row (by content hash or file name)",
              file=sys.stderr)
        return 1
    scale = args.scale or ratings_csv.scale_of([r for r, _ in matched])
    rated = [Rated(r.rating, v.cards) for r, v in matched]
    try:
        got = learn(rated, axis=args.axis, scale=scale, folds=args.folds, seed=args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"rating scale {scale[0]:g}–{scale[1]:g} → 0–100\n")
    print(format_result(got))
    out = Path(args.out) if args.out else ratings_path.parent / "profile.json"
    try:
        save_profile(out, got.profile)
    except OSError as e:
        print(f"error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"\nwrote {out} — give it to the Aggregate node's `calibration` input (a path in "
          "ComfyUI's user directory) or to `--calibration`.")
    return 0


def _folds(text: str) -> int:
    n = int(text)
    if not 2 <= n <= 20:
        raise argparse.ArgumentTypeError("--folds must be from 2 to 20")
    return n


def add_command(sub: Any) -> None:
    """`python -m scoring learn ratings.csv [report] [--out] [--axis] [--scale] ...`."""
    p = sub.add_parser("learn", help="fit a profile (calibration + ensemble weights) to your "
                       "ratings and compare it with the defaults on held-out images")
    p.add_argument("ratings", help="ratings.csv (file,rating[,sha256,flag]) from the report "
                   "page's Export or Save")
    p.add_argument("report", nargs="?", default=None,
                   help="report.jsonl or its folder (default: the one the ratings file names, "
                   "else the ratings file's folder)")
    p.add_argument("--out", default=None, help="profile JSON to write (default: profile.json "
                   "beside the ratings)")
    p.add_argument("--axis", default="overall", help="axis the ratings judge (default overall)")
    p.add_argument("--scale", type=scale, default=None, metavar="LOW,HIGH",
                   help="rating scale (default 1,5 when every rating is in it, else their "
                   "min–max)")
    p.add_argument("--folds", type=_folds, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="folds and bootstrap seed (default 0)")
    p.set_defaults(func=cmd_learn)
