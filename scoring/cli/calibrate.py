"""`calibrate` (compare a report with the user's ratings, fit per-source calibrations) and
`rubric` (print the default rubric to edit)."""

from __future__ import annotations

import argparse
import sys

from ..core.rubric import Rubric
from ..ensemble.calibrate import compare, load_ratings, save_calibrations
from ..report import read_jsonl
from .options import scale


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


def add_command(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("calibrate", help="compare a report with your own ratings")
    c.add_argument("report", help="report.jsonl written by score/demo")
    c.add_argument("ratings", help="CSV with file,rating")
    c.add_argument("--axis", default="overall", help="axis to compare (default overall)")
    c.add_argument("--scale", type=scale, default=None, help="rating scale low,high")
    c.add_argument("--out", default=None, help="write calibration JSON here")
    c.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("rubric", help="print the default rubric as TOML, to edit")
    r.set_defaults(func=cmd_rubric)
