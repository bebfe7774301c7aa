"""Saiten Score Filter: pass or reject each image of a batch by its verdict.

An empty side is blocked (`ExecutionBlocker`): whatever hangs off it (a SaveImage, a
preview) is skipped while the rest of the graph and the queue carry on. Never an empty batch,
never an interrupt. The optional LATENT (the batch that was decoded into the images) is split
the same way, so only the winners go on to a second sampling pass. With `publish` on, images
whose score passed but that still need a mosaic go to `needs_work` (for Saiten Mosaic).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from comfy_api.latest import io, ui
from comfy_execution.graph_utils import ExecutionBlocker

from ..scoring.core.cards import NEEDS_WORK, Verdict
from ..scoring.ensemble.select import (
    AXIS_CHOICES,
    CONFIDENCE,
    DEFAULT_THRESHOLD,
    MODES,
    UNSCORED_POLICIES,
    Rule,
    confidence_of,
    decided,
    value_of,
)
from .shared.common import batch_for
from .shared.types import Verdicts


def latent_batch(latent: dict[str, Any] | None, images: int) -> dict[str, Any] | None:
    """The LATENT, checked to hold one latent per image (None when not connected)."""
    if latent is None:
        return None
    n = int(latent["samples"].shape[0])
    if n != images:
        raise ValueError(
            f"the latent batch has {n} latents but the image batch has {images} images: "
            "connect the LATENT that was decoded into these images"
        )
    return latent


def take_latents(latent: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """The latents at `idx` (in that order), with their noise_mask and batch_index."""
    out = dict(latent)
    n = latent["samples"].shape[0]
    out["samples"] = latent["samples"][idx].clone()
    mask = latent.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:  # one mask for all stays as it is
        if mask.shape[0] < n:  # as ComfyUI's LatentFromBatch: masks repeat over the batch
            mask = mask.repeat(math.ceil(n / mask.shape[0]), *[1] * (mask.ndim - 1))[:n]
        out["noise_mask"] = mask[idx].clone()
    if "batch_index" in latent:
        out["batch_index"] = [latent["batch_index"][i] for i in idx]
    return out


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
                io.Latent.Input("latent", optional=True,
                                tooltip="The LATENT decoded into these images (optional): "
                                        "split like the images, e.g. to sample only the "
                                        "winners again."),
                io.Combo.Input("axis", options=list(AXIS_CHOICES), default="overall",
                               tooltip="What to compare: the final score (overall), one axis, "
                                       "or the ensemble's confidence (0–1)."),
                io.Combo.Input("mode", options=list(MODES), default="threshold"),
                io.Float.Input("threshold", default=DEFAULT_THRESHOLD, min=0.0, max=100.0,
                               step=0.01,
                               tooltip="threshold mode: images with value ≥ this pass "
                                       "(confidence is 0–1)."),
                io.Int.Input("top_k", default=4, min=0, max=4096,
                             tooltip="top_k mode: the K best scored images pass."),
                io.Combo.Input("unscored", options=list(UNSCORED_POLICIES), default="block",
                               tooltip="What happens to images the ensemble could not score."),
                io.Boolean.Input("keep_best", default=False,
                                 tooltip="When nothing would pass, let the best scored image "
                                         "pass anyway."),
                io.Float.Input("min_confidence", default=0.0, min=0.0, max=1.0, step=0.01,
                               optional=True,
                               tooltip="Scored images whose confidence on the compared axis "
                                       "is below this are rejected (0 = no minimum). One "
                                       "source alone reaches at most 0.5."),
                io.Boolean.Input("require_character", default=False, optional=True,
                                 tooltip="Pass only images Saiten Likeness says show your "
                                         "character (likeness ≥ 50); without a likeness "
                                         "nothing passes."),
                io.Boolean.Input("publish", default=False, optional=True,
                                 tooltip="Gate on Saiten Publish Check: a passing image that "
                                         "needs a mosaic goes to needs_work, one the check "
                                         "could not judge to rejected."),
            ],
            outputs=[
                io.Image.Output("passed"),
                io.Image.Output("rejected"),
                Verdicts.Output("passed_verdicts"),
                Verdicts.Output("rejected_verdicts"),
                io.Latent.Output("passed_latent", tooltip="The passed images' latents, in the "
                                                          "same order (needs latent)."),
                io.Latent.Output("rejected_latent"),
                Verdicts.Output("verdicts", tooltip="Every image's verdict in batch order, "
                                                    "with the filter's decision (passed / "
                                                    "rejected / unscored and the rule): "
                                                    "connect it to Saiten Batch Report."),
                io.Image.Output("needs_work", tooltip="publish on: images whose score passed "
                                                      "but that need a mosaic (→ Saiten "
                                                      "Mosaic)."),
                Verdicts.Output("needs_work_verdicts"),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, verdicts: list[Verdict], axis: str, mode: str,
                threshold: float, top_k: int, unscored: str, keep_best: bool,
                min_confidence: float = 0.0, require_character: bool = False,
                publish: bool = False,
                latent: dict[str, Any] | None = None) -> io.NodeOutput:
        images = batch_for(images, verdicts)
        latent = latent_batch(latent, images.shape[0])
        rule = Rule(axis=axis, mode=mode, threshold=threshold, top_k=top_k, unscored=unscored,
                    keep_best=keep_best, min_confidence=min_confidence,
                    character=require_character, publish=publish)
        verdicts = decided(list(verdicts), rule)
        work = [i for i, v in enumerate(verdicts) if v.decision.status == NEEDS_WORK]
        yes = [i for i, v in enumerate(verdicts) if v.decision.passed]
        no = [i for i, v in enumerate(verdicts) if not v.decision.passed and i not in work]

        def side(idx: list[int]) -> tuple:
            if not idx:
                return ExecutionBlocker(None), ExecutionBlocker(None), ExecutionBlocker(None)
            lat = take_latents(latent, idx) if latent is not None else ExecutionBlocker(None)
            return images[idx], [verdicts[i] for i in idx], lat

        (p_img, p_ver, p_lat), (r_img, r_ver, r_lat) = side(yes), side(no)
        w_img, w_ver, _ = side(work)
        lines = [
            f"passed {len(yes)}/{len(verdicts)} ({rule.describe()}; unscored: {unscored})",
            "passed: " + (", ".join(_tag(i, verdicts[i], rule) for i in yes) or "none"),
            "rejected: " + (", ".join(_tag(i, verdicts[i], rule) for i in no) or "none"),
        ]
        if publish or require_character:
            lines.insert(2, "needs work: " + (", ".join(_tag(i, verdicts[i], rule)
                                                        for i in work) or "none"))
            lines += [f"#{i} {v.decision.status}: {v.decision.why}"
                      for i, v in enumerate(verdicts)
                      if not v.decision.passed and v.decision.status != "unscored"
                      and v.decision.why]
        why: dict[str, list[int]] = {}  # one line per reason, not per image
        for i, v in enumerate(verdicts):
            if v.decision.status == "unscored":
                why.setdefault(v.decision.why, []).append(i)
        lines += [f"unscored {', '.join(f'#{i}' for i in idx)}: {reason}"
                  for reason, idx in why.items()]
        text = "\n".join(lines)
        return io.NodeOutput(p_img, r_img, p_ver, r_ver, p_lat, r_lat, verdicts, w_img, w_ver,
                             ui=ui.PreviewText(text))


def _tag(i: int, v: Verdict, rule: Rule) -> str:
    x = value_of(v, rule.axis)
    tag = f"#{i} " + ("unscored" if x is None else f"{x:.2f}" if rule.axis == CONFIDENCE
                      else f"{x:.0f}")
    if x is not None and confidence_of(v, rule.axis) < rule.min_confidence:
        tag += f" (confidence {confidence_of(v, rule.axis):.2f})"
    return tag


NODES = [SaitenScoreFilter]
