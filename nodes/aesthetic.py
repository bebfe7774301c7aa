"""Saiten Aesthetic (deepghs/anime_aesthetic, ONNX) and Saiten Aesthetic Head (a head over
ComfyUI's CLIP_VISION): `appeal` and `overall` at tagger cost.

Models live in `models/saiten_aesthetic` (registered through `folder_paths`, so
extra_model_paths.yaml applies): one folder per anime_aesthetic model (model.onnx, meta.json,
samples.npz) and the heads' files. A known model that is missing is downloaded there when
`allow_download` is on, with its size shown on the node first and a byte progress bar.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import Sheet
from ..scoring.core.errors import SourceError
from ..scoring.sources import Result, Source, catalogue, unavailable
from ..scoring.sources import known as catalogue_known
from ..scoring.sources.embed.source import AestheticHead
from .shared.clip_vision import ComfyEncoder
from .shared.common import HANDLES, run_source
from .shared.downloads import NodeDownload, cancel_is_interrupt
from .shared.types import Scores

log = logging.getLogger("saiten")

FOLDER = catalogue_known.ROOTS["aesthetic"]
HEAD_SUFFIXES = (".pth", ".safetensors")


def register_folders() -> None:
    """models/saiten_aesthetic under the name `saiten_aesthetic` (kept if configured)."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


def roots() -> list[Path]:
    """Where aesthetic models are looked up; the first is where downloads go."""
    return [Path(p) for p in folder_paths.get_folder_paths(FOLDER)]


def _local(pattern: str) -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    for root in roots():
        if root.is_dir():
            for p in sorted(root.glob(pattern)):
                found.setdefault(p.relative_to(root).as_posix(), p)
    return sorted(found.items())


def onnx_choices() -> list[str]:
    """Local anime_aesthetic folders, then the known ones not present (default first)."""
    local = [name.rsplit("/", 1)[0] for name, p in _local("**/model.onnx")
             if (p.parent / "meta.json").is_file()]
    known = [k.name for k in catalogue_known.known("aesthetic").values()
             if k.source == "aesthetic" and k.name not in local]
    default = catalogue.spec("aesthetic").facts["default_model"]
    return sorted(dict.fromkeys([*local, *known]), key=lambda n: (n != default, n))


def head_choices() -> list[str]:
    """Local head files, then the known heads not present."""
    local = [name for suffix in HEAD_SUFFIXES for name, _ in _local(f"**/*{suffix}")]
    known = [k.name for k in catalogue_known.known("aesthetic").values()
             if k.source == "aesthetic-head"
             and not any(n.split("/")[0] == k.name for n in local)]
    return [*sorted(local), *known]


def _fetch(name: str, allow: bool, node_id: str | None) -> Path:
    """The folder of known model `name` (downloaded when allowed), or SourceError."""
    k = catalogue_known.find(name)
    for root in roots():
        if k.present(root):
            return k.dest(root)
    with cancel_is_interrupt():
        return k.fetch(roots()[0], allow=allow, **NodeDownload(node_id).options())


def onnx_source(model: str, allow_download: bool, batch_size: int,
                node_id: str | None) -> Source:
    """The cached anime_aesthetic handle, or an `Unavailable` saying what to do."""
    try:
        local = [p for n, p in _local(f"{model}/model.onnx")]
        folder = local[0].parent if local else _fetch(model, allow_download, node_id)
    except SourceError as e:
        return unavailable("aesthetic", str(e))
    return HANDLES.get("aesthetic", model_path=str(folder / "model.onnx"),
                       batch_size=batch_size)


def head_path(head: str, allow_download: bool, node_id: str | None) -> Path:
    """The head file for a combo choice (a known head downloaded when allowed)."""
    local = dict(_local(head)) if Path(head).suffix in HEAD_SUFFIXES else {}
    if head in local:
        return local[head]
    k = catalogue_known.find(head)
    folder = _fetch(head, allow_download, node_id)
    return folder / k.model.files[0]


def summary(result: Result) -> str:
    lines = [result.describe, f"{len(result)} images in {result.seconds:.2f} s"]
    for i, cards in enumerate(result):
        c = cards[0]
        lines.append(f"#{i} abstained — {c.abstained}" if not c.ok else
                     f"#{i} appeal={c.axes['appeal']:.1f} {c.comment} "
                     f"(confidence {c.confidence:.2f})")
    return "\n".join(lines)


def _run_options(keep_loaded: bool, weight: float, label: str) -> dict:
    return {"label": label.strip(), "keep_loaded": keep_loaded,
            "weight": weight if weight > 0 else None}


def _weights(source: str) -> str:
    spec = catalogue.spec(source)
    return ", ".join(dict.fromkeys(f"{m.label} {spec.weight_for(m.label):g}"
                                   for m in spec.models))


def _common_inputs(source: str) -> list:
    return [
        io.Boolean.Input("allow_download", default=False,
                         tooltip="Download a missing known model into models/saiten_aesthetic "
                                 "(its size is shown first; free disk is checked)."),
        io.Int.Input("batch_size", default=8, min=1, max=256,
                     tooltip="Images per run of the model."),
        io.Boolean.Input("keep_loaded", default=True,
                         tooltip="Keep the model for the next run (ComfyUI may still evict "
                                 "it when the diffusion model needs memory)."),
        io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                       tooltip=f"Weight in the ensemble; 0 = the model's default "
                               f"({_weights(source)})"),
        io.String.Input("label", default="", tooltip="Name of this source in the cards"),
    ]


class SaitenAesthetic(io.ComfyNode):
    """Appeal and overall from deepghs/anime_aesthetic (ONNX, 7 classes → percentile)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenAesthetic",
            display_name="Saiten Aesthetic",
            category="Saiten",
            description="Scores appeal and overall with deepghs/anime_aesthetic (ONNX, at "
                        "tagger cost): the model's percentile among its training images.",
            inputs=[
                io.Image.Input("images", tooltip="The IMAGE batch to score."),
                io.Combo.Input("model", options=onnx_choices(),
                               tooltip="anime_aesthetic models in models/saiten_aesthetic; a "
                                       "known model that is missing is downloaded when "
                                       "allow_download is on."),
                Scores.Input("scores", optional=True,
                             tooltip="Cards from other sources; these are appended."),
                *_common_inputs("aesthetic"),
            ],
            outputs=[Scores.Output(display_name="scores")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, model: str, allow_download: bool = False, batch_size: int = 8,
                keep_loaded: bool = True, weight: float = 0.0, label: str = "",
                scores: Sheet | None = None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        source = onnx_source(model, allow_download, batch_size, node_id)
        sheet, result = run_source(source, images, scores, node_id=node_id,
                                   options=_run_options(keep_loaded, weight, label))
        text = summary(result)
        log.info("saiten: %s", text.splitlines()[0])
        return io.NodeOutput(sheet, ui=ui.PreviewText(text))


class SaitenAestheticHead(io.ComfyNode):
    """Appeal and overall from an aesthetic head over ComfyUI's CLIP_VISION."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenAestheticHead",
            display_name="Saiten Aesthetic Head",
            category="Saiten",
            description="Scores appeal and overall with a small head over a CLIP vision "
                        "model from Load CLIP Vision: aesthetic-predictor v2.5 (SigLIP "
                        "so400m-patch14-384), Waifu Scorer v3 or LAION's predictor (CLIP "
                        "ViT-L/14).",
            inputs=[
                io.Image.Input("images", tooltip="The IMAGE batch to score."),
                io.ClipVision.Input("clip_vision",
                                    tooltip="From Load CLIP Vision: SigLIP so400m-patch14-384 "
                                            "(sigclip_vision_patch14_384) for v2.5, CLIP "
                                            "ViT-L/14 for Waifu Scorer v3 and LAION."),
                io.Combo.Input("head", options=head_choices(),
                               tooltip="Head files in models/saiten_aesthetic; a known head "
                                       "that is missing is downloaded when allow_download "
                                       "is on."),
                Scores.Input("scores", optional=True,
                             tooltip="Cards from other sources; these are appended."),
                *(i for i in _common_inputs("aesthetic-head") if i.id != "keep_loaded"),
            ],
            outputs=[Scores.Output(display_name="scores")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, clip_vision, head: str, allow_download: bool = False,
                batch_size: int = 8, weight: float = 0.0, label: str = "",
                scores: Sheet | None = None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        try:
            # built per run: ComfyUI owns the encoder, the head is a few MB
            source: Source = AestheticHead(head_path=head_path(head, allow_download, node_id),
                                           encoder=ComfyEncoder(clip_vision),
                                           batch_size=batch_size)
        except SourceError as e:
            source = unavailable("aesthetic-head", str(e), label=head.split("/")[0])
        sheet, result = run_source(source, images, scores, node_id=node_id,
                                   options=_run_options(True, weight, label))
        text = summary(result)
        log.info("saiten: %s", text.splitlines()[0])
        return io.NodeOutput(sheet, ui=ui.PreviewText(text))


register_folders()

NODES = [SaitenAesthetic, SaitenAestheticHead]
