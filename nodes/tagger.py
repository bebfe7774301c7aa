"""Saiten Tagger (NudeNet / WD v3 / CL Tagger v2) and Saiten Technical Check nodes.

Model folders are registered through `folder_paths` (so extra_model_paths.yaml applies):
`saiten_tagger` (models/saiten_tagger), plus — read only — the folders users of the popular
WD14 tagger node already fill: a `wd14_tagger` entry if one is configured, models/wd14_tagger
and custom_nodes/ComfyUI-WD14-Tagger/models (its flat <name>.onnx + <name>.csv pairs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import Sheet
from ..scoring.sources import Result, catalogue
from ..scoring.sources.onnx import files as tagger_files
from ..scoring.sources.onnx.files import MODES, NUDENET
from .shared.common import HANDLES, cards_text, run_source
from .shared.downloads import NodeDownload, cancel_is_interrupt
from .shared.types import Scores

log = logging.getLogger("saiten")

FOLDER = "saiten_tagger"


def register_folders() -> None:
    """Add models/saiten_tagger under the name `saiten_tagger` (kept if already configured)."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


def model_dirs() -> list[Path]:
    """Where Tagger models are looked up, first = where downloads go."""
    dirs = [Path(p) for p in folder_paths.get_folder_paths(FOLDER)]
    if "wd14_tagger" in folder_paths.folder_names_and_paths:
        dirs += [Path(p) for p in folder_paths.get_folder_paths("wd14_tagger")]
    dirs.append(Path(folder_paths.models_dir) / "wd14_tagger")
    for custom in folder_paths.get_folder_paths("custom_nodes"):
        dirs += sorted(Path(custom).glob("*WD14*agger*/models"))
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def model_choices() -> list[str]:
    """NudeNet, every local WD/CL model, then the known downloadable ones."""
    return tagger_files.choices(model_dirs())


def tag_strings(sheet: Sheet) -> list[str]:
    """One comma-separated tag line per image (empty for an abstention)."""
    return [", ".join(c.tags) if c.ok else "" for cards in sheet for c in cards[:1]]


def summary(result: Result) -> str:
    """Provider, timing and the top tags per image, for the node."""
    n, seconds = len(result), result.seconds
    head = result.describe
    if result.provider:
        head += " · session " + ("reused" if result.reused else "new")
    lines = [head, f"{n} images in {seconds:.2f} s ({seconds / max(n, 1):.3f} s/image)"]
    for i, cards in enumerate(result):
        c = cards[0]
        if not c.ok:
            lines.append(f"#{i} abstained — {c.abstained}")
            continue
        axes = " ".join(f"{k}={v:.0f}" for k, v in c.axes.items())
        top = ", ".join(list(c.tags)[:8])
        lines.append(f"#{i} {axes}  {top}".rstrip())
    return "\n".join(lines)


class SaitenTagger(io.ComfyNode):
    """Tag and score every image of the batch with NudeNet, a WD v3 or a CL Tagger v2 model."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        wd, cl, nn = (catalogue.spec(k) for k in ("wd", "cl", "nudenet"))
        return io.Schema(
            node_id="SaitenTagger",
            display_name="Saiten Tagger",
            category="Saiten",
            description="Scores each image with an ONNX tagger (NudeNet offline, WD v3, "
                        "CL Tagger v2). Shows the provider actually used (CUDA/CPU).",
            inputs=[
                io.Image.Input("images"),
                io.Combo.Input("model", options=model_choices(), default=NUDENET,
                               tooltip="Models found in models/saiten_tagger (and the WD14 "
                                       "tagger's folders); a known model that is missing is "
                                       "downloaded when allow_download is on."),
                Scores.Input("scores", optional=True,
                             tooltip="Cards from other sources; this tagger's are appended."),
                io.Float.Input("general_threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = the model's recommended (WD "
                                       f"{wd.build['general_threshold']}, CL "
                                       f"{cl.build['threshold']})"),
                io.Float.Input("character_threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = the model's recommended (WD "
                                       f"{wd.build['character_threshold']}, CL "
                                       f"{cl.build['character_threshold']})"),
                io.Combo.Input("threshold_mode", options=list(MODES), default="fixed",
                               tooltip="fixed thresholds; per-tag best thresholds (CL "
                                       "model_tag_metrics.npz); MCut (WD)"),
                io.Int.Input("batch_size", default=8, min=1, max=256),
                io.Boolean.Input("allow_download", default=False,
                                 tooltip="Download a missing known model from Hugging Face "
                                         "(its size is shown first; free disk is checked). "
                                         "CL Tagger v2 is gated: accept its terms on the Hub "
                                         "and log in (hf auth login) or set HF_TOKEN."),
                io.Boolean.Input("keep_loaded", default=True,
                                 tooltip="Keep the session for the next run (ComfyUI may still "
                                         "evict it when the diffusion model needs memory)."),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight in the ensemble; 0 = the source's default "
                                       f"(WD {wd.default_weight}, CL {cl.default_weight}, "
                                       f"NudeNet {nn.default_weight})"),
                io.String.Input("label", default="", tooltip="Name of this source in the cards"),
            ],
            outputs=[
                Scores.Output(display_name="scores"),
                io.String.Output(display_name="tags", is_output_list=True),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, model: str, general_threshold: float = 0.0,
                character_threshold: float = 0.0, threshold_mode: str = "fixed",
                batch_size: int = 8, allow_download: bool = False, keep_loaded: bool = True,
                weight: float = 0.0, label: str = "", scores: Sheet | None = None,
                ) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        with cancel_is_interrupt():
            source = tagger_files.open_tagger(
                model, model_dirs(), HANDLES, allow_download=allow_download,
                feedback=NodeDownload(node_id).options(), batch_size=batch_size,
                general=general_threshold, character=character_threshold, mode=threshold_mode)
        options = {"label": label.strip(), "keep_loaded": keep_loaded,
                   "weight": weight if weight > 0 else None}
        sheet, result = run_source(source, images, scores, options=options, node_id=node_id)
        text = summary(result)
        log.info("saiten: %s", text.splitlines()[0])
        return io.NodeOutput(sheet, tag_strings(result), ui=ui.PreviewText(text))


class SaitenTechnicalCheck(io.ComfyNode):
    """Blank / black / NaN frames, blur, clipped exposure, low contrast → overall penalty."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenTechnicalCheck",
            display_name="Saiten Technical Check",
            category="Saiten",
            description="Catches broken generations (NaN/black/blank frames, blur, clipping, "
                        "low contrast) with numpy only: a penalty on overall and a reason.",
            inputs=[io.Image.Input("images"), Scores.Input("scores", optional=True)],
            outputs=[Scores.Output(display_name="scores")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, scores: Sheet | None = None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        source = HANDLES.get("technical")
        sheet, result = run_source(source, images, scores, node_id=node_id)
        return io.NodeOutput(sheet, ui=ui.PreviewText(cards_text(result)))


register_folders()

NODES = [SaitenTagger, SaitenTechnicalCheck]
