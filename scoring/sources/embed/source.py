"""The aesthetic heads as a source: an encoder's embedding → a head's score → `appeal` and
`overall` (see `heads` for the heads, `encoders` for the encoders)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ...core.cards import ScoreCard
from ...core.errors import Cancelled, SourceError
from ...core.images import BadImage, Image, finite
from ..base import Result, ScoreContext, Source
from ..spec import Model, Spec
from . import heads as H
from .encoders import Encoder, TransformersEncoder, as_pixels

log = logging.getLogger("saiten")

GITHUB = "https://github.com"

SPEC = Spec(
    "aesthetic-head", "aesthetic", ("appeal", "overall"), 0.8,
    build={"head_path": "", "encoder": "", "batch_size": 8, "device": "auto"},
    models=(
        Model("aesthetic_predictor_v2_5", "aesthetic-v2.5", 0.8, folder="aesthetic-v2.5",
              url=f"{GITHUB}/discus0434/aesthetic-predictor-v2-5/raw/main/models/"
                  "aesthetic_predictor_v2_5.pth", files=("aesthetic_predictor_v2_5.pth",),
              sha256="a6caf256b3dc434273c98dcb12f6bf17c5d4fc647d8df11f038386923dd06220",
              size=2_644_834, vram="+ SigLIP so400m 0.77 GiB", licence="agpl-3.0",
              note="over SigLIP so400m-patch14-384 (sigclip_vision_patch14_384); "
                   "1–10, 5.5+ great"),
        Model("waifu-scorer-v3", "waifu-scorer-v3", 0.8, folder="waifu-scorer-v3",
              repo="Eugeoter/waifu-scorer-v3", files=("model.safetensors",),
              size=11_200_000, vram="+ CLIP ViT-L/14 0.57 GiB", licence="openrail",
              note="over CLIP ViT-L/14; anime, 0–10"),
        Model("sac+logos+ava1", "laion-aesthetic", 0.5, folder="laion-aesthetic",
              url=f"{GITHUB}/christophschuhmann/improved-aesthetic-predictor/raw/main/"
                  "sac%2Blogos%2Bava1-l14-linearMSE.pth",
              files=("sac+logos+ava1-l14-linearMSE.pth",),
              sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
              size=3_714_759, vram="+ CLIP ViT-L/14 0.57 GiB", licence="apache-2.0",
              note="over CLIP ViT-L/14; photo-trained, 1–10"),
    ),
    facts={"families": {label: h.family for label, h in H.HEADS.items()}},
)
"""The heads the catalogue knows, by file name: v2.5 and Waifu Scorer v3 weigh 0.8, LAION's
photo-trained predictor 0.5."""


def label_of(path: Path) -> str:
    """The cards' name for a head file: the head its weights are, else the catalogue's name
    for its path, else its file name (a file that cannot be read abstains on loading)."""
    try:
        return H.identify(H.read_state(path)).label
    except SourceError:
        return SPEC.label_for(path.as_posix()) if SPEC.model(path.as_posix()) else path.stem


def _device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


class AestheticHead(Source):
    """A head file (`head_path`) over an `encoder`: an `Encoder` (ComfyUI's CLIP_VISION,
    wrapped by the node) or the folder of a transformers CLIP/SigLIP model (the CLI)."""

    spec = SPEC

    def __init__(self, *, head_path: str | Path, encoder: Encoder | str | Path,
                 batch_size: int = 8, device: str = "auto", label: str = "",
                 **kw: Any) -> None:
        self.head_path = Path(head_path)
        super().__init__(label=label or label_of(self.head_path), **kw)
        self.encoder: Any = encoder if not isinstance(encoder, (str, Path)) else \
            TransformersEncoder(encoder, device=_device(device))
        self.batch_size = max(1, int(batch_size))
        self.head: H.Head | None = None
        self.module: Any = None
        self.in_dim = 0

    @property
    def loaded(self) -> bool:
        return self.module is not None

    def memory_bytes(self) -> int:
        return int(getattr(self.encoder, "memory_bytes", lambda: 0)())

    def load(self) -> None:
        if self.module is not None:
            return
        head, module, in_dim = H.load(self.head_path)
        if head.family != self.encoder.family:
            want = "CLIP ViT-L/14" if head.family == H.CLIP else "SigLIP so400m-patch14-384"
            raise SourceError(f"{head.label} reads {want} embeddings, but the encoder given is "
                              f"{self.encoder.family}: connect a {want} CLIP vision model")
        self.head, self.module, self.in_dim = head, module, in_dim

    def unload(self) -> None:
        self.module = self.head = None
        if hasattr(self.encoder, "unload"):
            self.encoder.unload()

    def describe(self) -> str:
        head = self.head.label if self.head else self.head_path.name
        return f"{self.label}: {head} over {self.encoder.describe()}"

    def _score(self, images: list[Image], ctx: ScoreContext) -> Result:
        import torch

        assert self.head is not None and self.module is not None
        sheet: list[list[ScoreCard] | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = defaultdict(list)
        for i, img in enumerate(images):
            try:
                ready = finite(img)
                groups[ready.shape].append((i, ready))
            except BadImage as e:
                sheet[i] = [self.abstain(f"bad image: {e}")]
                ctx.progress(i)
        t_embed = t_head = 0.0
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                ctx.check()
                chunk = members[start:start + self.batch_size]
                t0 = time.perf_counter()
                try:
                    emb = self.encoder.embed(as_pixels([m for _, m in chunk]))
                except Cancelled:
                    raise
                except SourceError:
                    raise
                except Exception as e:  # one failing chunk abstains, the rest still score
                    log.warning("saiten: %s failed on images %s: %s", self.label,
                                [i for i, _ in chunk], e)
                    for i, _ in chunk:
                        sheet[i] = [self.abstain(f"{type(e).__name__}: {e}")]
                        ctx.progress(i)
                    continue
                t1 = time.perf_counter()
                if emb.ndim != 2 or emb.shape[1] != self.in_dim:
                    raise SourceError(f"the encoder gives {tuple(emb.shape[1:])}-wide embeddings"
                                      f", {self.head.label} expects {self.in_dim}: connect the "
                                      "encoder the head was trained on")
                norm = torch.linalg.vector_norm(emb.float(), dim=-1, keepdim=True)
                raws, values, confs = H.scores(self.head, self.module,
                                               emb / norm.clamp_min(1e-12))
                for (i, _), raw, value, conf in zip(chunk, raws, values, confs, strict=True):
                    sheet[i] = [self.card(
                        axes={"appeal": round(value, 2), "overall": round(value, 2)},
                        confidence=round(conf, 4), comment=f"{self.head.label} {raw:.2f}",
                        extras={"head": self.head.label, "raw": round(raw, 4),
                                "encoder": self.encoder.family})]
                    ctx.progress(i)
                t_head += time.perf_counter() - t1
                t_embed += t1 - t0
        timing = {"images": float(len(images)), "encode_s": t_embed, "head_s": t_head}
        return Result([c or [self.abstain("not scored")] for c in sheet], timing=timing)


__all__ = ["SPEC", "AestheticHead"]
