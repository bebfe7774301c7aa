"""Saiten Score Filter: pass or reject each image of a batch by its verdict.

An empty side is blocked (`ExecutionBlocker`): whatever hangs off it (a SaveImage, a
preview) is skipped while the rest of the graph and the queue carry on. Never an empty batch,
never an interrupt. The optional LATENT (the batch that was decoded into the images) is split
the same way, so only the winners go on to a second sampling pass.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from comfy_api.latest import io, ui
from comfy_execution.graph_utils import ExecutionBlocker

from ..scoring.core.cards import AXES, Verdict
from .common import batch_for
from .types import Verdicts

CONFIDENCE = "confidence"
CHOICES = ("overall", *(a for a in AXES if a != "overall"), CONFIDENCE)


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
                io.Latent.Input("latent", optional=True,
                                tooltip="The LATENT decoded into these images (optional): "
                                        "split like the images, e.g. to sample only the "
                                        "winners again."),
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
                io.Latent.Output("passed_latent", tooltip="The passed images' latents, in the "
                                                          "same order (needs latent)."),
                io.Latent.Output("rejected_latent"),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, verdicts: list[Verdict], axis: str, mode: str,
                threshold: float, top_k: int, unscored: str, keep_best: bool,
                min_confidence: float = 0.0,
                latent: dict[str, Any] | None = None) -> io.NodeOutput:
        images = batch_for(images, verdicts)
        latent = latent_batch(latent, images.shape[0])
        passed = select(list(verdicts), axis, mode, threshold, top_k, unscored, keep_best,
                        min_confidence)
        yes = [i for i, p in enumerate(passed) if p]
        no = [i for i, p in enumerate(passed) if not p]

        def side(idx: list[int]) -> tuple:
            if not idx:
                return ExecutionBlocker(None), ExecutionBlocker(None), ExecutionBlocker(None)
            lat = take_latents(latent, idx) if latent is not None else ExecutionBlocker(None)
            return images[idx], [verdicts[i] for i in idx], lat

        (p_img, p_ver, p_lat), (r_img, r_ver, r_lat) = side(yes), side(no)
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
        return io.NodeOutput(p_img, r_img, p_ver, r_ver, p_lat, r_lat,
                             ui=ui.PreviewText(text))


def _tag(i: int, v: Verdict, axis: str, min_confidence: float = 0.0) -> str:
    x = value_of(v, axis)
    tag = f"#{i} " + ("unscored" if x is None else f"{x:.2f}" if axis == CONFIDENCE
                      else f"{x:.0f}")
    if x is not None and confidence_of(v, axis) < min_confidence:
        tag += f" (confidence {confidence_of(v, axis):.2f})"
    return tag


NODES = [SaitenScoreFilter]
