"""Saiten Score Filter: pass or reject each image of a batch by its verdict.

An empty side is blocked (`ExecutionBlocker`): whatever hangs off it (a SaveImage, a
preview) is skipped while the rest of the graph and the queue carry on. Never an empty batch,
never an interrupt.
"""

from __future__ import annotations

import math

import torch
from comfy_api.latest import io, ui
from comfy_execution.graph_utils import ExecutionBlocker

from ..scoring.cards import AXES, Verdict
from .common import batch_for
from .types import Verdicts

CONFIDENCE = "confidence"
CHOICES = ("overall", *(a for a in AXES if a != "overall"), CONFIDENCE)


def value_of(v: Verdict, axis: str) -> float | None:
    """The number the filter compares, or None when the image is unscored on that axis
    (every source expected to score it abstained, or the image has no score at all)."""
    x = (v.confidence if v.scored else None) if axis == CONFIDENCE else v.value(axis)
    return float(x) if x is not None and math.isfinite(x) else None


def confidence_of(v: Verdict, axis: str) -> float:
    """The confidence behind the compared value: that axis's, or the verdict's."""
    return v.confidence if axis == CONFIDENCE else v.axis_confidence(axis)


def select(verdicts: list[Verdict], axis: str, mode: str, threshold: float, top_k: int,
           unscored: str, keep_best: bool, min_confidence: float = 0.0) -> list[bool]:
    """Which images pass (True) — the filter's whole decision, image by image. Unscored
    images follow the `unscored` policy; scored ones below `min_confidence` never pass."""
    values = [value_of(v, axis) for v in verdicts]
    scored = [i for i, x in enumerate(values) if x is not None
              and confidence_of(verdicts[i], axis) >= min_confidence]
    if mode == "top_k":
        best = sorted(scored, key=lambda i: (-values[i], i))[:max(top_k, 0)]
        keep = set(best)
    else:
        keep = {i for i in scored if values[i] >= threshold}
    if keep_best and scored and not keep:
        keep.add(min(scored, key=lambda i: (-values[i], i)))
    return [i in keep if values[i] is not None else unscored == "pass"
            for i in range(len(verdicts))]


class SaitenScoreFilter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenScoreFilter",
            display_name="Saiten Score Filter",
            category="Saiten",
            description=(
                "Splits the batch into passed and rejected images by a score threshold or the "
                "top K. An empty side blocks what is connected to it (nothing saved, nothing "
                "previewed) without stopping the rest of the workflow or the queue."
            ),
            inputs=[
                io.Image.Input("images"),
                Verdicts.Input("verdicts", tooltip="From Saiten Ensemble Aggregate, for this "
                                                   "same batch."),
                io.Combo.Input("axis", options=list(CHOICES), default="overall",
                               tooltip="What to compare: the final score (overall), one axis, "
                                       "or the ensemble's confidence (0–1)."),
                io.Combo.Input("mode", options=["threshold", "top_k"], default="threshold"),
                io.Float.Input("threshold", default=60.0, min=0.0, max=100.0, step=0.01,
                               tooltip="threshold mode: images with value ≥ this pass "
                                       "(confidence is 0–1)."),
                io.Int.Input("top_k", default=4, min=0, max=4096,
                             tooltip="top_k mode: the K best scored images pass."),
                io.Combo.Input("unscored", options=["block", "pass"], default="block",
                               tooltip="What happens to images the ensemble could not score."),
                io.Boolean.Input("keep_best", default=False,
                                 tooltip="When nothing would pass, let the best scored image "
                                         "pass anyway."),
                io.Float.Input("min_confidence", default=0.0, min=0.0, max=1.0, step=0.01,
                               optional=True,
                               tooltip="Scored images whose confidence on the compared axis "
                                       "is below this are rejected (0 = no minimum). One "
                                       "source alone reaches at most 0.5."),
            ],
            outputs=[
                io.Image.Output("passed"),
                io.Image.Output("rejected"),
                Verdicts.Output("passed_verdicts"),
                Verdicts.Output("rejected_verdicts"),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, verdicts: list[Verdict], axis: str, mode: str,
                threshold: float, top_k: int, unscored: str, keep_best: bool,
                min_confidence: float = 0.0) -> io.NodeOutput:
        images = batch_for(images, verdicts)
        passed = select(list(verdicts), axis, mode, threshold, top_k, unscored, keep_best,
                        min_confidence)
        yes = [i for i, p in enumerate(passed) if p]
        no = [i for i, p in enumerate(passed) if not p]

        def side(idx: list[int]) -> tuple:
            if not idx:
                return ExecutionBlocker(None), ExecutionBlocker(None)
            return images[idx], [verdicts[i] for i in idx]

        (p_img, p_ver), (r_img, r_ver) = side(yes), side(no)
        rule = (f"top {top_k} by {axis}" if mode == "top_k" else f"{axis} ≥ {threshold:g}")
        if min_confidence > 0:
            rule += f", confidence ≥ {min_confidence:g}"
        lines = [
            f"passed {len(yes)}/{len(passed)} ({rule}; unscored: {unscored})",
            "passed: " + (", ".join(_tag(i, verdicts[i], axis) for i in yes) or "none"),
            "rejected: " + (", ".join(_tag(i, verdicts[i], axis, min_confidence) for i in no)
                            or "none"),
        ]
        why: dict[str, list[int]] = {}  # one line per reason, not per image
        for i, v in enumerate(verdicts):
            reason = v.missing.get(axis) or v.unscored
            if value_of(v, axis) is None and reason:
                why.setdefault(reason, []).append(i)
        lines += [f"unscored {', '.join(f'#{i}' for i in idx)}: {reason}"
                  for reason, idx in why.items()]
        text = "\n".join(lines)
        return io.NodeOutput(p_img, r_img, p_ver, r_ver, ui=ui.PreviewText(text))


def _tag(i: int, v: Verdict, axis: str, min_confidence: float = 0.0) -> str:
    x = value_of(v, axis)
    tag = f"#{i} " + ("unscored" if x is None else f"{x:.2f}" if axis == CONFIDENCE
                      else f"{x:.0f}")
    if x is not None and confidence_of(v, axis) < min_confidence:
        tag += f" (confidence {confidence_of(v, axis):.2f})"
    return tag


NODES = [SaitenScoreFilter]
