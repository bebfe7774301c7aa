"""Saiten Ensemble Aggregate: every source's cards → one verdict per image."""

from __future__ import annotations

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import merge_sheets
from ..scoring.ensemble.aggregate import AggregateSettings, combine_sheet, parse_weights
from ..scoring.ensemble.profile import Profile, load_confined_profile
from ..scoring.sources import catalogue
from .shared.common import verdicts_text
from .shared.types import Scores, Verdicts

DEFAULT_WEIGHTS = ""
"""No overrides: every card already carries its catalogue weight (the CLI's too)."""
MAX_INPUTS = 8
DEFAULTS = AggregateSettings()


def profile(path: str) -> Profile:
    """The profile (`learn`'s, or `calibrate --out`'s fits) under ComfyUI's user directory;
    "" = the defaults. Anything else (absolute, `..`, a symlink out, missing, invalid) is a
    ValueError that never quotes the file nor tells what exists outside that directory."""
    if not path.strip():
        return Profile()
    return load_confined_profile(path, folder_paths.get_user_directory())


class SaitenEnsembleAggregate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenEnsembleAggregate",
            display_name="Saiten Ensemble Aggregate",
            category="Saiten",
            description=(
                "Combines the score cards of every connected source into one verdict per image: "
                "per axis the median, outliers beyond k·MAD dropped, a weighted mean of the "
                "rest; the technical check's penalty comes off overall. Fewer than min_sources "
                "sources → the image is unscored. An axis whose expected sources all abstained "
                "(a judge down, a refusing VLM) is unscored too, never filled in by the "
                "technical check; without overall the image has no score."
            ),
            inputs=[
                io.Autogrow.Input("scores", template=io.Autogrow.TemplatePrefix(
                    Scores.Input("scores", tooltip="Score cards from a Saiten source node."),
                    prefix="scores", min=1, max=MAX_INPUTS,
                )),
                io.Int.Input("min_sources", default=DEFAULTS.min_sources, min=1, max=16,
                             tooltip="Fewer sources with an opinion → the image is unscored."),
                io.Float.Input("k", default=DEFAULTS.k, min=0.1, max=20.0, step=0.1,
                               tooltip="A value farther than k·MAD from the median is dropped."),
                io.String.Input("weights", default=DEFAULT_WEIGHTS, multiline=False,
                                tooltip="source=weight overrides, e.g. 'wd=0.8, grok=1.1'; "
                                        "sources not listed keep the weight on their cards "
                                        "(the catalogue's: " + ", ".join(
                                            f"{k} {v}" for k, v in catalogue.weights().items())
                                        + ")."),
                io.String.Input("calibration", default="", optional=True,
                                tooltip="your profile from `python -m scoring learn` (or a "
                                        "cal.json from `calibrate --out`): its calibrations "
                                        "apply to each source's scores and its weights to the "
                                        "ensemble (weights written above still win); a path "
                                        "inside ComfyUI's user directory (no absolute paths, "
                                        "no '..'); empty = none"),
            ],
            outputs=[
                Verdicts.Output("verdicts", tooltip="One verdict per image, in batch order."),
                io.Float.Output("score", tooltip=(
                    "The FIRST image's final score (0–100; -1 when unscored), for simple "
                    "graphs. Every image's score is in scores.")),
                io.Float.Output("scores", is_output_list=True, tooltip=(
                    "Every image's final score (0–100; -1 when unscored), one FLOAT per "
                    "image in batch order: a node connected here runs once per image.")),
            ],
        )

    @classmethod
    def execute(cls, scores: io.Autogrow.Type, min_sources: int, k: float,
                weights: str, calibration: str = "") -> io.NodeOutput:
        sheets = [s for s in (scores or {}).values() if s is not None]
        if not sheets:
            raise ValueError("connect at least one scores input (from a Saiten source node)")
        merged = merge_sheets(*sheets)  # a clear error when inputs come from different batches
        learned = profile(calibration or "")
        settings = learned.settings(AggregateSettings(k=k, min_sources=min_sources,
                                                      weights=parse_weights(weights)))
        verdicts = combine_sheet([learned.apply(cards) for cards in merged], settings)
        per_image = [-1.0 if v.score is None else float(v.score) for v in verdicts]
        score = per_image[0] if per_image else -1.0
        text = verdicts_text(verdicts)
        if not learned.empty:
            text = f"{learned.describe()} from {calibration.strip()}\n{text}"
        return io.NodeOutput(verdicts, score, per_image, ui=ui.PreviewText(text))


NODES = [SaitenEnsembleAggregate]
