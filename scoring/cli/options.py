"""The command line's shared options: how each is read and checked, and the option groups
the scoring commands (`score`, `watch`, `demo`) share."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from ..batch.comfy_neighbour import DEFAULT_URL
from ..core.rubric import Rubric
from ..ensemble.aggregate import AggregateSettings, parse_weights
from ..ensemble.profile import Profile, load_profile
from ..ensemble.select import DEFAULT_THRESHOLD
from ..sources import OFFLINE_DEFAULT, REGISTRY

_AGGREGATE = {f.name: f.default for f in fields(AggregateSettings)}


def source_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise argparse.ArgumentTypeError(f"unknown source(s) {given}; known: {', '.join(REGISTRY)}")
    return names


def weights(text: str) -> dict[str, float]:
    try:
        return parse_weights(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def option(text: str) -> tuple[str, str, Any]:
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


def scale(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale wants 'low,high', e.g. 1,5; got {text!r}") \
            from None
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"--scale: high must exceed low, got {text!r}")
    return lo, hi


def rubric_file(text: str) -> Rubric:
    try:
        return Rubric.load(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror or e}") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def calibration_file(text: str) -> Profile:
    try:
        return load_profile(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror or e}") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def scoring_options(sp: argparse.ArgumentParser) -> None:
    """What the scoring commands share: sources' options, aggregation, rubric, report."""
    sp.add_argument("--out", default="saiten-out", help="report folder (default %(default)s)")
    sp.add_argument("--min-sources", type=int, default=_AGGREGATE["min_sources"],
                    help="fewer → unscored (default %(default)s)")
    sp.add_argument("--k", type=float, default=_AGGREGATE["k"],
                    help="outlier cut in MADs (default %(default)s)")
    sp.add_argument("--weights", type=weights, default={},
                    help="override the catalogue's weights, e.g. 'wd=0.8, grok=1.1'")
    sp.add_argument("--pass-score", type=float, default=DEFAULT_THRESHOLD, metavar="SCORE",
                    help="an image passes when its score is at least this, as in the Score "
                         "Filter (default %(default)g); the report's status says so")
    sp.add_argument("--require-publishable", action="store_true",
                    help="with --sources …,censor: an image passes only when the publish "
                         "check says publishable (needs work and unchecked do not)")
    sp.add_argument("--require-character", action="store_true",
                    help="with --sources …,likeness: an image passes only when it shows the "
                         "reference character (likeness ≥ 50)")
    sp.add_argument("--repeats", type=int, default=1, help="runs per sampling source")
    sp.add_argument("--batch", type=int, default=8, help="images per batch")
    sp.add_argument("--option", type=option, action="append", default=[],
                    metavar="SOURCE.NAME=VALUE",
                    help="a source option, e.g. wd.model_path=/models/wd or "
                         "vlm-llamacpp.model=NAME (repeatable)")
    sp.add_argument("--models", action="append", default=[], metavar="DIR",
                    help="a model folder: vlm-*.model=NAME is looked up there (a GGUF "
                         "paired with its mmproj as the node does), and aesthetic.model=NAME, "
                         "aesthetic-head.head=NAME (repeatable)")
    sp.add_argument("--rubric", type=rubric_file, default=None, metavar="FILE.toml",
                    help="the rubric every VLM and the judge use (start from "
                         "`python -m scoring rubric`)")
    sp.add_argument("--calibration", type=calibration_file, default=Profile(),
                    metavar="profile.json", help="apply a profile `learn` wrote (its "
                    "calibrations and weights; --weights still win) or the fits `calibrate "
                    "--out` wrote, to each source's scores before combining")


def overnight_options(sp: argparse.ArgumentParser) -> None:
    """Running beside a ComfyUI, and resuming from the report folder's cache."""
    sp.add_argument("--comfy", default=None, metavar="URL|off",
                    help=f"the ComfyUI beside this run (default {DEFAULT_URL} when it "
                    "answers): wait while it generates, make it free memory first")
    sp.add_argument("--comfy-wait", type=float, default=15 * 60, metavar="SECONDS",
                    help="wait at most this long for a busy ComfyUI (default 900)")
    sp.add_argument("--rescore", action="store_true",
                    help="ignore the score cache in --out (and verdicts saved in PNGs)")


def sources_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--sources", type=source_names, default=list(OFFLINE_DEFAULT),
                    help=f"comma-separated (default {','.join(OFFLINE_DEFAULT)})")


def engine_options(sp: argparse.ArgumentParser) -> None:
    """Where `score` runs: in this process, or on a Ray cluster (`ray_engine`)."""
    sp.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local: this process (default); ray: a Ray cluster (pip install "
                         "\"comfyui-saiten[ray]\"), the same cache and report")
    sp.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:10001",
                    help="the Ray cluster to join (default: start one on this machine)")
    sp.add_argument("--remote-workers", type=int, default=None, metavar="N",
                    help="with --engine ray: workers calling each remote source (judge, "
                         "vlm-http) at once (default: one per CPU of the cluster, at least 2)")
