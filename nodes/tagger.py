"""Saiten Tagger (NudeNet / WD v3 / CL Tagger v2) and Saiten Technical Check nodes.

Model folders are registered through `folder_paths` (so extra_model_paths.yaml applies):
`saiten_tagger` (models/saiten_tagger), plus — read only — the folders users of the popular
WD14 tagger node already fill: a `wd14_tagger` entry if one is configured, models/wd14_tagger
and custom_nodes/ComfyUI-WD14-Tagger/models (its flat <name>.onnx + <name>.csv pairs).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from ..scoring import models
from ..scoring.cards import ScoreCard, Sheet, merge_sheets
from ..scoring.sources import SourceError
from .common import cached_source, cards_text, images_from_tensor, run_source
from .types import Scores

log = logging.getLogger("saiten")

FOLDER = "saiten_tagger"
NUDENET = "nudenet (offline)"
MODES = ("fixed", "per-tag", "mcut")
PROVIDES = {"nudenet": ("erotic",), "wd": ("erotic",), "cl": ("erotic", "overall")}


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
    local = sorted(models.list_models(model_dirs()))
    known = [k for k in models.KNOWN if not any(n.split("/")[0] == k for n in local)]
    return [NUDENET, *local, *known]


def resolve_source(model: str, allow_download: bool,
                   node_id: str | None) -> tuple[str, Path | None]:
    """(source name, model.onnx) for a combo choice; downloads a known model if allowed."""
    if model == NUDENET:
        return "nudenet", None
    bars: list[Any] = []

    def progress(name: str, done: int, total: int | None) -> None:
        if not bars:
            bars.append(comfy.utils.ProgressBar(100, node_id=node_id))
        if total:
            bars[0].update_absolute(int(100 * done / total))

    path = models.resolve(model, model_dirs(), allow_download=allow_download, progress=progress)
    kind = models.kind_of(path)
    if kind is None:
        raise SourceError(f"{path}: no selected_tags.csv (WD) or model_vocabulary.json (CL) "
                          "next to it")
    return kind, path


def tagger_options(kind: str, general: float, character: float, mode: str) -> dict[str, Any]:
    """Widget values → source options; a threshold of 0 means the model's recommended one."""
    if kind == "wd":
        return {"general_threshold": general or 0.35, "character_threshold": character or 0.85,
                "mcut": mode == "mcut"}
    if kind == "cl":
        return {"threshold": general or 0.55, "character_threshold": character or 0.55,
                "threshold_mode": "per-tag" if mode == "per-tag" else "single"}
    return {}


def tag_strings(sheet: Sheet) -> list[str]:
    """One comma-separated tag line per image (empty for an abstention)."""
    return [", ".join(c.tags) if c.ok else "" for cards in sheet for c in cards[:1]]


def summary(source: Any, sheet: Sheet, seconds: float, reused: bool) -> str:
    """Provider, timing and the top tags per image, for the node."""
    n = len(sheet)
    head = source.describe()
    if getattr(source, "model", None) is not None or hasattr(source, "provider"):
        head += " · session " + ("reused" if reused else "new")
    lines = [head, f"{n} images in {seconds:.2f} s ({seconds / max(n, 1):.3f} s/image)"]
    for i, cards in enumerate(sheet):
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
                               tooltip="0 = the model's recommended (WD 0.35, CL 0.55)"),
                io.Float.Input("character_threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = the model's recommended (WD 0.85, CL 0.55)"),
                io.Combo.Input("threshold_mode", options=list(MODES), default="fixed",
                               tooltip="fixed thresholds; per-tag best thresholds (CL "
                                       "model_tag_metrics.npz); MCut (WD)"),
                io.Int.Input("batch_size", default=8, min=1, max=256),
                io.Boolean.Input("allow_download", default=False,
                                 tooltip="Download a missing known model from Hugging Face "
                                         "(CL Tagger v2 is gated: set HF_TOKEN)."),
                io.Boolean.Input("keep_loaded", default=True,
                                 tooltip="Keep the session for the next run (ComfyUI may still "
                                         "evict it when the diffusion model needs memory)."),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight in the ensemble; 0 = the source's default "
                                       "(WD/CL 0.8, NudeNet 0.6)"),
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
        label = label.strip() or None
        t0 = time.perf_counter()
        try:
            kind, path = resolve_source(model, allow_download, node_id)
        except SourceError as e:  # a missing model: this source abstains, the graph runs on
            n = len(images_from_tensor(images))
            name = label or model
            mine = [[ScoreCard.abstain(name, "tagger", str(e), provides=("erotic",))]
                    for _ in range(n)]
            sheet = merge_sheets(scores, mine) if scores is not None else mine
            return io.NodeOutput(sheet, [""] * n, ui=ui.PreviewText(f"{name}: {e}"))
        options: dict[str, Any] = {"batch_size": batch_size, "label": label,
                                   "keep_loaded": keep_loaded,
                                   **tagger_options(kind, general_threshold,
                                                    character_threshold, threshold_mode)}
        if path is not None:
            options["model_path"] = str(path)
        if weight > 0:
            options["weight"] = weight
        source = cached_source(kind, **options)
        was_loaded = source.loaded
        sheet, mine = run_source(source, images, scores, keep_loaded=keep_loaded,
                                 node_id=node_id)
        model_obj = getattr(source, "model", None)
        reused = was_loaded or bool(model_obj and model_obj.reused)
        text = summary(source, mine, time.perf_counter() - t0, reused)
        log.info("saiten: %s", text.splitlines()[0])
        return io.NodeOutput(sheet, tag_strings(mine), ui=ui.PreviewText(text))


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
        source = cached_source("technical")
        sheet, mine = run_source(source, images, scores, node_id=node_id)
        return io.NodeOutput(sheet, ui=ui.PreviewText(cards_text(mine)))


register_folders()

NODES = [SaitenTagger, SaitenTechnicalCheck]
