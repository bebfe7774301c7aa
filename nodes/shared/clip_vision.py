"""ComfyUI's CLIP_VISION as the aesthetic heads' encoder (`scoring.sources.embed.encoders`).

ComfyUI loads, evicts and frees the model (`encode_image` goes through
`comfy.model_management`) and preprocesses as it always does; CLIP gives its projected
`image_embeds` (centre-cropped, as CLIP's processor), SigLIP its tokens (squashed to the
square, as SigLIP's processor), pooled here with SigLIP's own attention-pooling head, which
ComfyUI's model does not keep: it is read from the CLIP vision file the model came from,
found among `models/clip_vision` by its weights.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import folder_paths
import torch

from ...scoring.core.errors import SourceError
from ...scoring.sources.embed.encoders import CLIP, SIGLIP, attention_pool, read_pooling

_PROBE = "vision_model.embeddings.patch_embedding.weight"
"""The tensor that tells which file a loaded model came from (its first filters)."""


def family_of(clip_vision: Any) -> str:
    """CLIP or SIGLIP for a ComfyUI CLIP_VISION; SourceError for other image encoders."""
    vision = getattr(getattr(clip_vision, "model", None), "vision_model", None)
    embeddings = getattr(vision, "embeddings", None)
    if vision is None or embeddings is None:
        raise SourceError("this CLIP_VISION is not a CLIP or SigLIP vision model (DINOv2 and "
                          "others have no aesthetic head): load CLIP ViT-L/14 or SigLIP "
                          "so400m-patch14-384 with Load CLIP Vision")
    return SIGLIP if getattr(embeddings, "class_embedding", 0) is None else CLIP


@functools.lru_cache(maxsize=8)
def _pooling_from(path: str, _mtime: float) -> dict[str, Any]:
    return read_pooling(Path(path))


def _same_file(path: str, probe: torch.Tensor) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            if _PROBE not in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                return False
            part = f.get_slice(_PROBE)
            if list(part.get_shape()) != list(probe.shape):
                return False
            t = part[: min(4, probe.shape[0])]
    except Exception:
        return False
    return torch.equal(t.to(probe.dtype), probe[: t.shape[0]])


def pooling_head(clip_vision: Any) -> dict[str, Any]:
    """SigLIP's attention-pooling weights for this CLIP_VISION, read from its file in
    models/clip_vision (matched by its first patch-embedding filters)."""
    embeddings = clip_vision.model.vision_model.embeddings
    probe = embeddings.patch_embedding.weight.detach().to("cpu")
    for name in folder_paths.get_filename_list("clip_vision"):
        path = folder_paths.get_full_path("clip_vision", name)
        if path and path.endswith(".safetensors") and _same_file(path, probe):
            return _pooling_from(path, Path(path).stat().st_mtime)
    raise SourceError("aesthetic-predictor v2.5 needs SigLIP's attention-pooling head, which "
                      "ComfyUI's CLIP vision model does not keep: Saiten reads it from the "
                      "file you loaded, but found no .safetensors in models/clip_vision with "
                      "these weights. Load the SigLIP file from models/clip_vision with Load "
                      "CLIP Vision")


class ComfyEncoder:
    """An `Encoder` over a ComfyUI CLIP_VISION (held for one call only); SigLIP's pooling
    weights come from its file unless given."""

    def __init__(self, clip_vision: Any, pooling: dict[str, Any] | None = None) -> None:
        self.clip_vision = clip_vision
        self.family = family_of(clip_vision)
        self.pooling = pooling if pooling is not None or self.family != SIGLIP \
            else pooling_head(clip_vision)
        layers = clip_vision.model.vision_model.encoder.layers
        self.heads = int(layers[0].self_attn.heads)

    def embed(self, pixels: Any) -> Any:
        out = self.clip_vision.encode_image(pixels, crop=self.family == CLIP)
        if self.family == CLIP:
            return out["image_embeds"].float().cpu()
        return attention_pool(out["last_hidden_state"], self.pooling, self.heads).cpu()

    def describe(self) -> str:
        device = getattr(self.clip_vision, "load_device", "?")
        return f"ComfyUI CLIP vision ({self.family}, {device})"
