"""What every Saiten node shares: IMAGE tensors → images, running a source with its run
options, progress and cancel, the loaded-model handles (`HANDLES`, built with ComfyUI's
memory policy), and text for the node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import comfy.model_management as mm
import comfy.utils
import numpy as np
import torch

from ...scoring.core.cards import ScoreCard, Sheet, Verdict, merge_sheets
from ...scoring.core.images import BadImage, Image, as_rgb
from ...scoring.core.rubric import Rubric
from ...scoring.report import summary
from ...scoring.sources import Cancelled, Result, ScoreContext, Source
from ...scoring.sources.handles import Handles
from .comfy_memory import POLICY

HANDLES = Handles(POLICY)
"""Every loaded scorer of the graph, by identity; ComfyUI evicts them through `POLICY`."""


def images_from_tensor(images: torch.Tensor) -> list[Image]:
    """A ComfyUI IMAGE batch [B,H,W,C] (or one [H,W,C]) → one RGB float image per item."""
    if not isinstance(images, torch.Tensor):
        raise BadImage(f"expected an IMAGE tensor, got {type(images).__name__}")
    t = images.detach()
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise BadImage(f"expected an IMAGE batch [B,H,W,C], got shape {tuple(t.shape)}")
    arr = t.to(device="cpu", dtype=torch.float32).numpy()
    return [as_rgb(np.ascontiguousarray(a)) for a in arr]


def batch_for(images: torch.Tensor, verdicts: Sequence[Any]) -> torch.Tensor:
    """The IMAGE batch as [B,H,W,C], checked to be the batch `verdicts` were made for."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if len(verdicts) != images.shape[0]:
        raise ValueError(
            f"the batch has {images.shape[0]} images but verdicts are for {len(verdicts)}: "
            "connect verdicts that were computed from this same image batch"
        )
    return images


def run_source(
    source: Source, images: torch.Tensor | None, scores: Sheet | None = None, *,
    rubric: Rubric | None = None, repeats: int = 1, options: Mapping[str, Any] | None = None,
    node_id: str | None = None,
) -> tuple[Sheet, Result]:
    """Score an IMAGE batch with `source` under this call's run `options` (label, weight,
    keep_loaded, method…); returns (all cards so far, this call's Result). `images` None:
    a source that reads cards only (the judge), one placeholder per image of `scores`.

    Progress advances per image; a cancel from the UI stops between images and raises
    ComfyUI's interrupt (never an abstention).
    """
    if images is None:
        imgs: list[Any] = [None] * len(scores or [])
    else:
        imgs = images_from_tensor(images)
    if scores is not None and len(scores) != len(imgs):
        raise ValueError(
            f"the scores input is for {len(scores)} images but the batch has {len(imgs)}: "
            "connect scores that came from this same image batch"
        )
    bar = comfy.utils.ProgressBar(len(imgs), node_id=node_id)

    def progress(i: int) -> None:
        # ComfyUI's progress hook raises its interrupt when the user cancels; inside a
        # source that must be a Cancelled, never an exception the source turns into abstentions
        try:
            bar.update_absolute(i + 1)
        except mm.InterruptProcessingException:
            raise Cancelled("cancelled") from None

    ctx = ScoreContext(
        rubric=rubric or Rubric.default(), prior=scores, progress=progress,
        interrupted=mm.processing_interrupted, repeats=repeats, options=dict(options or {}),
    )
    try:
        result = source.score(imgs, ctx)
    except Cancelled:
        mm.throw_exception_if_processing_interrupted()
        raise mm.InterruptProcessingException() from None
    bar.update_absolute(len(imgs))
    return (merge_sheets(scores, result) if scores is not None else result.sheet), result


def retries_note(card: ScoreCard) -> str:
    """" (attempt 2: 1 refused, reworded prompts)" for a card that took more than one
    attempt (a VLM's refusal or unusable answer is retried with reworded prompts), else ""."""
    n = int(card.extras.get("attempts", 1) or 1)
    if n <= 1:
        return ""
    refused = int(card.extras.get("refusals", 0) or 0)
    what = f"{refused} refused" if refused else "no usable answer"
    if card.ok:
        return f" (attempt {n}: {what} before, reworded prompts)"
    return f" ({n} attempts: {what}, reworded prompts)"


def cards_text(sheet: Sheet) -> str:
    """One line per image and card, for showing on the node."""
    lines = []
    for i, cards in enumerate(sheet):
        for c in cards:
            if c.ok:
                axes = " ".join(f"{k}={v:.0f}" for k, v in c.axes.items())
                extra = f" −{c.penalty:.0f} ({'; '.join(c.reasons)})" if c.penalty else ""
                line = f"#{i} {c.source}: {axes}{extra} {c.comment}".rstrip()
            else:
                line = f"#{i} {c.source}: abstained — {c.abstained}"
            lines.append(line + retries_note(c))
    retried = [c for cards in sheet for c in cards if retries_note(c)]
    if retried:
        refusals = sum(int(c.extras.get("refusals", 0) or 0) for c in retried)
        lines.append(f"retried with reworded prompts: {len(retried)} of "
                     f"{sum(map(len, sheet))} cards, {refusals} refusals in all")
    return "\n".join(lines)


def verdict_line(i: int, v: Verdict) -> str:
    """One image's verdict as a line for the node: score, axes, confidence, why anything is
    missing or dropped, and the sources used."""
    return f"#{i} {summary(v)} | used: {', '.join(v.used) or '—'}"


def verdicts_text(verdicts: Sequence[Verdict]) -> str:
    """Every image's verdict, one line each (comments on their own indented line)."""
    lines = []
    for i, v in enumerate(verdicts):
        lines.append(verdict_line(i, v))
        if v.comment:
            lines.append(f"    {v.comment}")
    return "\n".join(lines)
