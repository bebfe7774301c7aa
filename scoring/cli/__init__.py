"""`python -m scoring`: score a folder, the embedded samples, or compare with your ratings.

    python -m scoring score <folder> [--sources nudenet,technical] [--out DIR]
        [--option wd.model_path=/models/wd-eva02-large-tagger-v3] [--pass-score 60]
        [--comfy URL|off] [--comfy-wait SECONDS] [--rescore]
        [--engine ray [--address auto|HOST:PORT|ray://HOST:10001] [--remote-workers N]]
    python -m scoring watch <folder> [same options] [--idle-exit SECONDS]
    python -m scoring demo [--out DIR] [--samples DIR]
        [--rubric my_rubric.toml] [--calibration profile.json]
    python -m scoring calibrate <report.jsonl> <ratings.csv> [--axis overall] [--scale 1,5]
        [--out cal.json]
    python -m scoring learn <ratings.csv> [report] [--out profile.json]  # your taste
    python -m scoring rubric > my_rubric.toml     # the default rubric, to edit
    python -m scoring doctor [--json]             # what this Python can run, and fixes
    python -m scoring models [--models DIR]       # known and installed models
    python -m scoring models download NAME        # fetch one (size shown, disk checked)

Each command is a module with `add_command(subparsers)`; this one only gathers them. A
report folder that cannot be written (a full disk, a read-only folder) ends a run with one
line naming the folder and its free space, and exit status 74 (EX_IOERR); the report
already there stays as it was.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.atomic import WriteError
from ..ensemble.aggregate import AggregateSettings
from ..host import doctor
from . import calibrate, learn, models, score

COMMANDS = (score, calibrate, learn, doctor, models)
EXIT_WRITE = 74
"""Exit status of a run whose report folder cannot be written (sysexits' EX_IOERR)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoring", description="Saiten (採点): score "
                                "images with an ensemble of local sources.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for key in ("repeats", "batch", "remote_workers"):
        if (getattr(args, key, None) or 1) < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    for key in ("comfy_wait", "idle_exit", "settle"):
        if (getattr(args, key, None) or 0) < 0:
            parser.error(f"--{key.replace('_', '-')} must not be negative")
    if hasattr(args, "k"):
        try:
            args.settings = args.calibration.settings(AggregateSettings(
                k=args.k, min_sources=args.min_sources, weights=args.weights))
        except ValueError as e:  # "…: min_sources must be …" → "--min-sources must be …"
            name, _, rest = str(e).rpartition(": ")[2].partition(" ")
            parser.error(f"--{name.replace('_', '-')} {rest}")
    try:
        return args.func(args)
    except WriteError as e:  # a full disk, a read-only folder: one line, never a traceback
        print(f"error: {e}", file=sys.stderr)
        return EXIT_WRITE
