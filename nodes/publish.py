"""Ready to sell: Saiten Publish Check (censor regions found, measured and judged against a
store's mosaic rule, drawn on a preview), Saiten Mosaic (a compliant mosaic over what needs
one) and Saiten Likeness (CCIP against the user's reference images).

Model folders are registered through `folder_paths` (so extra_model_paths.yaml applies):
`saiten_censor` (models/saiten_censor/<model>/model.onnx + model_artifacts.json) and
`saiten_likeness` (models/saiten_likeness/<model>/model_feat.onnx + metrics.json). The check
assists the creator's own review: it never claims legal certainty.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import folder_paths
import numpy as np
import torch
from comfy_api.latest import io, ui
from comfy_execution.graph_utils import ExecutionBlocker

from ..scoring.core.cards import Sheet, Verdict
from ..scoring.core.errors import SourceError
from ..scoring.core.images import to_uint8
from ..scoring.ensemble.select import after_fix
from ..scoring.publish import PRESETS, apply_mosaic
from ..scoring.publish.preview import draw
from ..scoring.publish.rules import CUSTOM, OK, publish_of, recheck
from ..scoring.sources import Source, unavailable
from ..scoring.sources.known import ROOTS
from ..scoring.sources.onnx import censor, folders, likeness
from .shared.common import HANDLES, batch_for, images_from_tensor, run_source
from .shared.downloads import NodeDownload, cancel_is_interrupt
from .shared.types import Scores, Verdicts

log = logging.getLogger("saiten")

FOLDERS = {kind: ROOTS[kind] for kind in ("censor", "likeness")}
SPECS = {"censor": censor.SPEC, "likeness": likeness.SPEC}
RULES = (*PRESETS, CUSTOM)
NOTE = "An aid to your own review, not a legal judgement."
KEEP = ("Keep the session for the next run (ComfyUI may still evict it when the diffusion "
        "model needs memory).")


def register_folders() -> None:
    """models/saiten_censor and models/saiten_likeness (kept if already configured)."""
    for name in FOLDERS.values():
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))


def model_dirs(kind: str) -> list[Path]:
    """Where `kind`'s models are looked up; the first is where downloads go."""
    return [Path(p) for p in folder_paths.get_folder_paths(FOLDERS[kind])]


def source_for(kind: str, model: str, allow_download: bool, node_id: str | None,
               **build: Any) -> Source:
    """The cached handle for `kind` on `model` (downloaded when allowed, its size and bytes
    on the node, ComfyUI's cancel stopping it), or an `Unavailable` saying what to do."""
    try:
        with cancel_is_interrupt():
            path = folders.resolve(SPECS[kind], model, model_dirs(kind),
                                   allow_download=allow_download,
                                   feedback=NodeDownload(node_id).options())
    except SourceError as e:
        return unavailable(kind, str(e), label=kind)
    return HANDLES.get(kind, model_path=str(path), **build)


def verdict_lines(sheet: Sheet) -> list[str]:
    """One line per image: its publish verdict."""
    return [f"#{i} {publish_of(cards)['summary']}" for i, cards in enumerate(sheet)]


def previews(images: torch.Tensor, sheet: Sheet) -> torch.Tensor:
    """The batch with every image's regions drawn (green obscured, red needs a mosaic,
    orange too fine)."""
    out = []
    for img, cards in zip(images_from_tensor(images), sheet, strict=True):
        out.append(draw(to_uint8(img), publish_of(cards)).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(out))


class SaitenPublishCheck(io.ComfyNode):
    """Where a mosaic must be, and whether the one there is big enough."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        spec = censor.SPEC
        return io.Schema(
            node_id="SaitenPublishCheck",
            display_name="Saiten Publish Check",
            category="Saiten",
            description="Finds the regions a Japanese store requires obscured (anime censor "
                        "detector; NudeNet for realistic images), measures what covers each "
                        "(mosaic block size and grid, bar, blur, nothing) and judges every "
                        "image against the chosen rule: publishable, or needs work (needs a "
                        "mosaic at R1; mosaic too fine at R2: 3 px found, 11 px needed). "
                        + NOTE,
            inputs=[
                io.Image.Input("images", tooltip="The IMAGE batch to check (from VAE Decode, "
                                                 "Load Image, …)."),
                io.Combo.Input("model", options=folders.choices(spec, model_dirs("censor")),
                               default=spec.facts["default_model"],
                               tooltip="deepghs/anime_censor_detection models in "
                                       "models/saiten_censor (s: more accurate, n: faster); "
                                       "a missing one is downloaded when allow_download is "
                                       "on."),
                Scores.Input("scores", optional=True,
                             tooltip="Cards from other sources; this check's are appended."),
                io.Combo.Input("rule", options=list(RULES), default="1/100",
                               tooltip="1/100: blocks ≥ ⌈long side/100⌉ px and ≥ 4 px (the "
                                       "rule creators work to); strict x2: twice that (one "
                                       "large store); custom: divisor and minimum below."),
                io.Int.Input("divisor", default=100, min=10, max=1000,
                             tooltip="custom rule: blocks ≥ ⌈long side/divisor⌉ px"),
                io.Int.Input("minimum", default=4, min=1, max=200,
                             tooltip="custom rule: and never under this many px"),
                io.Float.Input("min_cover", default=0.9, min=0.1, max=1.0, step=0.01,
                               tooltip="The share of each region the mosaic or bar must "
                                       "cover."),
                io.Boolean.Input("nudenet", default=True,
                                 tooltip="Also look with NudeNet (realistic images): its "
                                         "exposed-genital classes add regions."),
                io.Float.Input("conf_threshold", default=spec.build["conf_threshold"],
                               min=0.05, max=0.95, step=0.01,
                               tooltip="Detections below this confidence are not regions."),
                io.Boolean.Input("allow_download", default=False,
                                 tooltip="Download a missing known model from Hugging Face."),
                io.Boolean.Input("keep_loaded", default=True, tooltip=KEEP),
            ],
            outputs=[
                Scores.Output(display_name="scores",
                              tooltip="Every card so far plus the check's (its verdict per "
                                      "image)."),
                io.Image.Output(display_name="preview",
                                tooltip="The images with their regions drawn: green "
                                        "obscured, red needs a mosaic, orange too fine."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, model: str, rule: str = "1/100", divisor: int = 100,
                minimum: int = 4, min_cover: float = 0.9, nudenet: bool = True,
                conf_threshold: float = 0.25, allow_download: bool = False,
                keep_loaded: bool = True, scores: Sheet | None = None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        source = source_for("censor", model, allow_download, node_id, nudenet=nudenet,
                            conf_threshold=conf_threshold)
        options = {"rule": rule, "divisor": divisor, "minimum": minimum,
                   "min_cover": min_cover, "keep_loaded": keep_loaded}
        sheet, result = run_source(source, images, scores, options=options, node_id=node_id)
        mine = [list(cards) for cards in result]
        text = "\n".join([result.describe, *verdict_lines(mine), NOTE])
        log.info("saiten: publish check: %s", "; ".join(verdict_lines(mine)))
        return io.NodeOutput(sheet, previews(images, mine), ui=ui.PreviewText(text))


class SaitenMosaic(io.ComfyNode):
    """A compliant mosaic over the regions the check found."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenMosaic",
            display_name="Saiten Mosaic",
            category="Saiten",
            description="Mosaics the regions a Saiten Publish Check found, with blocks of the "
                        "size its rule requires on the image's own grid, each region padded by "
                        "the margin, then judges the same regions again. Review the result "
                        "yourself. " + NOTE,
            inputs=[
                io.Image.Input("images", tooltip="The images the Publish Check checked."),
                Verdicts.Input("verdicts", optional=True,
                               tooltip="From Saiten Score Filter (needs_work_verdicts) for "
                                       "these images; or connect scores instead."),
                Scores.Input("scores", optional=True,
                             tooltip="From a Saiten Publish Check on these images (when no "
                                     "filter is in between)."),
                io.Float.Input("margin", default=0.15, min=0.0, max=1.0, step=0.01,
                               tooltip="Each region grows by this share of its width and "
                                       "height on every side before the mosaic."),
                io.Int.Input("block", default=0, min=0, max=512,
                             tooltip="Block size in px; 0 = what the check's rule requires "
                                     "for each image (never less than that)."),
                io.Boolean.Input("only_failing", default=True,
                                 tooltip="Mosaic only regions that need work; off: every "
                                         "region found."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="The batch with the mosaics applied (images "
                                             "with nothing to do unchanged)."),
                     Verdicts.Output(display_name="verdicts",
                                     tooltip="The verdicts judged again on the mosaicked "
                                             "images: a needs-work image that is publishable "
                                             "now has passed (needs verdicts).")],
        )

    @classmethod
    def execute(cls, images, verdicts: list[Verdict] | None = None,
                scores: Sheet | None = None, margin: float = 0.15, block: int = 0,
                only_failing: bool = True) -> io.NodeOutput:
        if verdicts is None and scores is None:
            raise ValueError("Saiten Mosaic: connect verdicts (from Saiten Score Filter) or "
                             "scores (from Saiten Publish Check) for these images")
        sheet = [v.cards for v in verdicts] if verdicts is not None else scores
        images = batch_for(images, sheet)
        out, lines, after = [], [], []
        for i, (img, cards) in enumerate(zip(images, sheet, strict=True)):
            p = publish_of(cards)
            fixed, line = mosaic_one(img, p, margin, block, only_failing)
            out.append(fixed)
            lines.append(f"#{i} {line}")
            if verdicts is not None and "rule" in p:
                again = recheck(to_uint8(images_from_tensor(fixed)[0]), p)
                after.append(after_fix(verdicts[i], again))
                lines.append(f"   now {again['summary']}")
            elif verdicts is not None:
                after.append(verdicts[i])
        lines.append(NOTE)
        return io.NodeOutput(torch.stack(out),
                             after if verdicts is not None else ExecutionBlocker(None),
                             ui=ui.PreviewText("\n".join(lines)))


def mosaic_one(img: torch.Tensor, p: dict[str, Any], margin: float, block: int,
               only_failing: bool) -> tuple[torch.Tensor, str]:
    """One image [H,W,C] mosaicked by its publish verdict `p`, and a line saying what was
    done."""
    if "needed" not in p:
        return img, f"left as it is — {p['summary']}"
    regions = [r for r in p["regions"] if not only_failing or r["status"] != OK]
    if not regions:
        return img, "nothing to mosaic"
    size = max(int(block), int(p["needed"]))
    arr = img.detach().to(device="cpu", dtype=torch.float32).numpy()
    done = apply_mosaic(arr, [tuple(r["box"]) for r in regions], size, margin)
    names = ", ".join(r["name"] for r in regions)
    return torch.from_numpy(done).to(img.dtype), f"mosaicked {names} with {size} px blocks"


class SaitenLikeness(io.ComfyNode):
    """Is it my character? CCIP against the reference images."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        spec = likeness.SPEC
        return io.Schema(
            node_id="SaitenLikeness",
            display_name="Saiten Likeness",
            category="Saiten",
            description="Compares each image's character with your reference images (CCIP, "
                        "deepghs/ccip_onnx): a likeness axis 0–100 (50 at the model's "
                        "same-character threshold) and a same-character decision the filter "
                        "can require. Several references merge (median difference).",
            inputs=[
                io.Image.Input("images", tooltip="The IMAGE batch to compare."),
                io.Image.Input("references",
                               tooltip="The character's reference images (a LoadImage, or "
                                       "several batched); at most "
                                       f"{likeness.MAX_REFERENCES} are used."),
                io.Combo.Input("model", options=folders.choices(spec, model_dirs("likeness")),
                               default=spec.facts["default_model"],
                               tooltip="deepghs/ccip_onnx models in models/saiten_likeness; "
                                       "a missing one is downloaded when allow_download is "
                                       "on."),
                Scores.Input("scores", optional=True,
                             tooltip="Cards from other sources; these are appended."),
                io.Float.Input("threshold", default=0.0, min=0.0, max=0.99, step=0.001,
                               tooltip="Same character at or under this difference; 0 = the "
                                       "model's own (its metrics.json)."),
                io.Boolean.Input("allow_download", default=False,
                                 tooltip="Download a missing known model from Hugging Face."),
                io.Boolean.Input("keep_loaded", default=True, tooltip=KEEP),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight on the likeness axis; 0 = the default "
                                       f"({spec.default_weight})."),
                io.String.Input("label", default="", tooltip="Name of this source in the cards"),
            ],
            outputs=[Scores.Output(display_name="scores",
                                   tooltip="Every card so far plus the likeness cards.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, references, model: str, threshold: float = 0.0,
                allow_download: bool = False, keep_loaded: bool = True, weight: float = 0.0,
                label: str = "", scores: Sheet | None = None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        source = source_for("likeness", model, allow_download, node_id, threshold=threshold)
        options = {"references": images_from_tensor(references), "keep_loaded": keep_loaded,
                   "label": label.strip(), "weight": weight if weight > 0 else None}
        sheet, result = run_source(source, images, scores, options=options, node_id=node_id)
        lines = [result.describe]
        for i, cards in enumerate(result):
            c = cards[0]
            if not c.ok:
                lines.append(f"#{i} abstained — {c.abstained}")
                continue
            same = "same character" if c.extras["same_character"] else "another character?"
            lines.append(f"#{i} likeness {c.axes['likeness']:.0f} ({same}; difference "
                         f"{c.extras['difference']:.3f}, threshold {c.extras['threshold']:.3f},"
                         f" {c.extras['references']} references)")
        return io.NodeOutput(sheet, ui=ui.PreviewText("\n".join(lines)))


register_folders()

NODES = [SaitenPublishCheck, SaitenMosaic, SaitenLikeness]
