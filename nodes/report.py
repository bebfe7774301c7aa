"""Where scores go: shown on the node, written into saved PNGs, a batch report for overnight
runs — and the pack's sample images, so example workflows run with no files of your own."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from urllib.parse import quote

import folder_paths
import numpy as np
import torch
from comfy.cli_args import args
from comfy_api.latest import io, ui
from PIL import Image as PILImage

from ..scoring.core.cards import Sheet, Verdict
from ..scoring.core.images import list_images, load, to_pil
from ..scoring.core.paths import confined
from ..scoring.host.pack import SAMPLES
from ..scoring.report import Entry, read_entries, save_png, thumbnail, write_report
from ..scoring.report.comfy_meta import from_prompt
from ..scoring.report.page import REPORT_ROUTE
from .shared.common import batch_for, cards_text, images_from_tensor, verdicts_text
from .shared.types import Scores, Verdicts


def _inside_output(folder: str) -> Path:
    """`folder` under ComfyUI's output directory (no absolute paths, no way out of it)."""
    return confined(folder, folder_paths.get_output_directory(),
                    what="folder (a sub-folder of the output directory)",
                    where="the output directory", file=False)


def badge(v: Verdict) -> dict:
    """What the web extension draws over a preview: the score (or "—") and a short line."""
    score = v.score
    return {
        "score": None if score is None else round(score, 1),
        "label": "—" if score is None else f"{score:.0f}",
        "confidence": round(v.confidence, 2),
        "unscored": v.unscored,
        "status": v.decision.status if v.decision else None,
    }


class SaitenShowScores(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenShowScores",
            display_name="Saiten Show Scores",
            category="Saiten",
            description="Shows verdicts (score, axes, confidence, sources used and dropped) "
                        "and/or the raw score cards as text on the node.",
            inputs=[
                Verdicts.Input("verdicts", optional=True),
                Scores.Input("scores", optional=True, tooltip="Raw cards of every source."),
            ],
            outputs=[io.String.Output("text")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, verdicts: list[Verdict] | None = None,
                scores: Sheet | None = None) -> io.NodeOutput:
        if verdicts is None and scores is None:
            raise ValueError("connect verdicts (from Saiten Ensemble Aggregate) or scores")
        parts = []
        if verdicts is not None:
            parts.append(verdicts_text(verdicts) or "(no images)")
        if scores is not None:
            parts.append(cards_text(scores) or "(no cards)")
        text = "\n\n".join(parts)
        return io.NodeOutput(text, ui=ui.PreviewText(text))


class SaitenSaveImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenSaveImage",
            display_name="Saiten Save Image",
            category="Saiten",
            description="Saves images like Save Image, with each image's verdict in the PNG "
                        "metadata (text chunks 'saiten' = JSON, 'saiten_score') beside "
                        "ComfyUI's prompt and workflow.",
            inputs=[
                io.Image.Input("images"),
                Verdicts.Input("verdicts"),
                io.String.Input("filename_prefix", default="Saiten",
                                tooltip="As in Save Image (may hold a sub-folder and "
                                        "%date:yyyy-MM-dd% style fields)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images: torch.Tensor, verdicts: list[Verdict],
                filename_prefix: str = "Saiten") -> io.NodeOutput:
        images = batch_for(images, verdicts)
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(),
            images.shape[2], images.shape[1],
        )
        comfy_text: dict[str, str] = {}
        if not args.disable_metadata:
            if cls.hidden.prompt is not None:
                comfy_text["prompt"] = json.dumps(cls.hidden.prompt)
            for k, v in (cls.hidden.extra_pnginfo or {}).items():
                comfy_text[k] = json.dumps(v)
        results, badges = [], []
        for i, (img, v) in enumerate(zip(images_from_tensor(images), verdicts, strict=True)):
            file = f"{name.replace('%batch_num%', str(i))}_{counter:05}_.png"
            save_png(Path(folder) / file, img, v, text=comfy_text)
            results.append(ui.SavedResult(file, subfolder, io.FolderType.output))
            badges.append(badge(v))
            counter += 1
        return io.NodeOutput(ui={"images": results, "saiten": badges,
                                 "text": [verdicts_text(verdicts)]})


class SaitenBatchReport(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenBatchReport",
            display_name="Saiten Batch Report",
            category="Saiten",
            description="Adds this batch to report.jsonl, report.csv and report.html (sortable, "
                        "with thumbnails) in a folder of the output directory — leave it on "
                        "for overnight runs and open the HTML in the morning: rate the images "
                        "from the keyboard there, save the ratings, and `python -m scoring "
                        "learn` fits the ensemble to your taste.",
            inputs=[
                io.Image.Input("images"),
                Verdicts.Input("verdicts"),
                io.String.Input("folder", default="saiten_report",
                                tooltip="Sub-folder of ComfyUI's output directory."),
                io.String.Input("title", default="Saiten report"),
                io.Int.Input("thumbnail_size", default=192, min=32, max=1024),
            ],
            outputs=[io.String.Output("html_path")],
            hidden=[io.Hidden.prompt],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images: torch.Tensor, verdicts: list[Verdict], folder: str = "saiten_report",
                title: str = "Saiten report", thumbnail_size: int = 192) -> io.NodeOutput:
        images = batch_for(images, verdicts)
        out = _inside_output(folder)
        old = read_entries(out / "report.jsonl") if (out / "report.jsonl").exists() else []
        meta = from_prompt(cls.hidden.prompt) if isinstance(cls.hidden.prompt, dict) else {}
        stamp = time.strftime("%Y%m%d-%H%M%S")
        new = []
        for i, (img, v) in enumerate(zip(images_from_tensor(images), verdicts, strict=True)):
            name = f"{stamp}_{len(old) + i:05}"
            thumb = thumbnail(img, size=thumbnail_size)  # the image's content, as the report
            new.append(Entry(name, v, thumb, dict(meta), sha256=hashlib.sha256(thumb).hexdigest()))
        write_report(out, old + new, title)  # each file replaced whole: never half a report
        html_path = str(out / "report.html")
        rel = out.relative_to(Path(folder_paths.get_output_directory()).resolve()).as_posix()
        page = f"{REPORT_ROUTE}/{quote(rel)}/report.html"
        text = f"{len(new)} added, {len(old) + len(new)} in {html_path}\nto rate them: {page}"
        return io.NodeOutput(html_path, ui={"text": [text], "saiten_report": [page]})


class SaitenSampleImages(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenSampleImages",
            display_name="Saiten Sample Images",
            category="Saiten",
            description="The pack's own sample images (photos and deliberately broken frames) "
                        "as one batch, each letterboxed to size×size: for trying the workflow "
                        "with no files of your own.",
            inputs=[
                io.Int.Input("size", default=512, min=64, max=2048, step=8,
                             tooltip="Every image is fitted into size×size (border pixels "
                                     "repeated to fill)."),
            ],
            outputs=[io.Image.Output("images"), io.String.Output("names")],
        )

    @classmethod
    def execute(cls, size: int = 512) -> io.NodeOutput:
        files = list_images(SAMPLES) if SAMPLES.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no sample images in {SAMPLES} (is the pack complete?)")
        batch = [letterbox(to_pil(load(f)), size) for f in files]
        return io.NodeOutput(torch.from_numpy(np.stack(batch)), ", ".join(f.name for f in files))


def letterbox(img: PILImage.Image, size: int) -> np.ndarray:
    """`img` scaled to fit size×size (aspect kept) and padded by repeating its border pixels,
    as float32 HxWx3: the padding adds no content of its own (a grey or black bar would hide
    a washed-out or dark image from the technical check)."""
    scale = size / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    a = np.asarray(img.resize((w, h), PILImage.Resampling.LANCZOS), dtype=np.float32) / 255.0
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(a, ((top, size - h - top), (left, size - w - left), (0, 0)), mode="edge")


NODES = [SaitenShowScores, SaitenSaveImage, SaitenBatchReport, SaitenSampleImages]
