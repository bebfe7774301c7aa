"""Image encoders for the aesthetic heads: what the heads read, the same in ComfyUI and the CLI.

An `Encoder` turns RGB images into the embedding a head was trained on: CLIP ViT-L/14's
projected image embedding (`image_embeds`), or SigLIP so400m's attention-pooled output
(`pooler_output`). Inside ComfyUI the node builds one over ComfyUI's own CLIP_VISION (so
ComfyUI loads, evicts and frees the encoder); the CLI builds `TransformersEncoder` from a local
model folder. Both preprocess exactly as ComfyUI's `clip_preprocess` does (`preprocess` here:
bicubic with antialias, CLIP centre-cropped, SigLIP squashed to its square as its processor
does, quantised to 8 bits, normalised) and both run fp16-stored weights in fp32 as ComfyUI
does, so one image gets one score either way.

ComfyUI's SigLIP model has no attention-pooling head (it returns the post-layernorm tokens):
`attention_pool` applies SigLIP's own head (`vision_model.head.*`, read from the encoder's
file with `read_pooling`) to those tokens, as transformers' `SiglipMultiheadAttentionPoolingHead`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...core.errors import SourceError
from .heads import CLIP, SIGLIP

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
POOL_PREFIX = "vision_model.head."
POOL_KEYS = ("probe", "attention.in_proj_weight", "attention.in_proj_bias",
             "attention.out_proj.weight", "attention.out_proj.bias", "layernorm.weight",
             "layernorm.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")
POOL_EPS = 1e-6  # SigLIP's layer_norm_eps


class Encoder(Protocol):
    """What an aesthetic head needs from an image encoder."""

    family: str
    """CLIP or SIGLIP."""

    def embed(self, pixels: Any) -> Any:
        """[B,H,W,3] float32 RGB 0–1 (a torch tensor) → [B, D] float32 embeddings."""
        ...

    def describe(self) -> str: ...


def preprocess(images: Any, size: int, mean: Sequence[float], std: Sequence[float],
               crop: bool) -> Any:
    """[B,H,W,3] → normalised [B,3,size,size], as ComfyUI's `clip_preprocess`: bicubic with
    antialias (the short side to `size` then a centre crop, or squashed when not `crop`),
    rounded to 8-bit levels, (x − mean)/std."""
    import torch

    x = images[..., :3].movedim(-1, 1)
    h, w = x.shape[2], x.shape[3]
    if (h, w) != (size, size):
        if crop:
            scale = size / min(h, w)
            target = (round(scale * h), round(scale * w))
        else:
            target = (size, size)
        x = torch.nn.functional.interpolate(x, size=target, mode="bicubic", antialias=True)
        top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


def attention_pool(tokens: Any, weights: dict[str, Any], heads: int) -> Any:
    """SigLIP's multi-head attention pooling of `tokens` [B,T,D] → [B,D] (a learned probe
    attends over the tokens, then layernorm + MLP with a residual)."""
    import torch
    import torch.nn.functional as F

    x = tokens.float()
    b, _, d = x.shape
    w = {k: v.to(device=x.device, dtype=torch.float32) for k, v in weights.items()}
    wq, wk, wv = w["attention.in_proj_weight"].chunk(3)
    bq, bk, bv = w["attention.in_proj_bias"].chunk(3)
    probe = w["probe"].reshape(1, 1, d).expand(b, 1, d)
    hd = d // heads

    def split(t: Any) -> Any:
        return t.reshape(b, -1, heads, hd).transpose(1, 2)

    q, k, v = split(F.linear(probe, wq, bq)), split(F.linear(x, wk, bk)), split(F.linear(x, wv, bv))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
    h = F.linear(att.transpose(1, 2).reshape(b, 1, d), w["attention.out_proj.weight"],
                 w["attention.out_proj.bias"])
    n = F.layer_norm(h, (d,), w["layernorm.weight"], w["layernorm.bias"], POOL_EPS)
    mlp = F.linear(F.gelu(F.linear(n, w["mlp.fc1.weight"], w["mlp.fc1.bias"]),
                          approximate="tanh"), w["mlp.fc2.weight"], w["mlp.fc2.bias"])
    return (h + mlp)[:, 0]


def read_pooling(path: Path) -> dict[str, Any]:
    """SigLIP's attention-pooling head (`vision_model.head.*`) from a safetensors encoder file;
    SourceError when the file has none."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            keys = set(f.keys())
            missing = [k for k in POOL_KEYS if POOL_PREFIX + k not in keys]
            if missing:
                raise SourceError(
                    f"{path.name} has no SigLIP attention-pooling head ({POOL_PREFIX}*): "
                    "aesthetic-predictor v2.5 reads SigLIP's pooled output. Use a SigLIP file "
                    "that keeps it (the vision model of google/siglip-so400m-patch14-384)")
            return {k: f.get_tensor(POOL_PREFIX + k) for k in POOL_KEYS}
    except SourceError:
        raise
    except Exception as e:
        raise SourceError(f"{path.name}: not a readable safetensors file ({e})") from e


def _config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SourceError(f"{folder}: no readable config.json — give the folder of a "
                          f"transformers CLIP or SigLIP model ({e})") from e
    vision = config.get("vision_config", config)
    if not isinstance(vision, dict):
        raise SourceError(f"{folder}/config.json: no vision_config")
    return {**vision, "model_type": config.get("model_type", vision.get("model_type", ""))}


class TransformersEncoder:
    """A CLIP or SigLIP vision model from a local transformers folder (the CLI's encoder)."""

    def __init__(self, folder: str | Path, *, device: str = "cpu") -> None:
        self.folder = Path(folder)
        config = _config(self.folder)
        kind = str(config.get("model_type", ""))
        self.family = SIGLIP if kind.startswith("siglip") else CLIP if kind.startswith(
            "clip") else ""
        if not self.family:
            raise SourceError(f"{self.folder}: model_type {kind!r} is neither CLIP nor SigLIP")
        self.size = int(config.get("image_size", 384 if self.family == SIGLIP else 224))
        self.device = device
        self.model: Any = None

    def load(self) -> None:
        if self.model is not None:
            return
        import torch
        import transformers

        cls = (transformers.SiglipVisionModel if self.family == SIGLIP
               else transformers.CLIPVisionModelWithProjection)
        try:
            model = cls.from_pretrained(str(self.folder), dtype=torch.float32)
        except Exception as e:
            raise SourceError(f"{self.folder}: cannot load it as a {self.family} vision model "
                              f"({type(e).__name__}: {e})") from e
        for p in model.parameters():  # fp16-stored weights run in fp32, as in ComfyUI
            p.data = p.data.to(torch.float16).to(torch.float32)
        self.model = model.eval().to(self.device)

    def unload(self) -> None:
        self.model = None

    def memory_bytes(self) -> int:
        files = list(self.folder.glob("*.safetensors"))
        return 2 * sum(f.stat().st_size for f in files)

    def embed(self, pixels: Any) -> Any:
        import torch

        self.load()
        crop = self.family == CLIP
        mean, std = (SIGLIP_MEAN, SIGLIP_STD) if self.family == SIGLIP else (CLIP_MEAN, CLIP_STD)
        x = preprocess(pixels.to(self.device), self.size, mean, std, crop)
        with torch.inference_mode():
            out = self.model(pixel_values=x)
        got = out.pooler_output if self.family == SIGLIP else out.image_embeds
        return got.float().cpu()

    def describe(self) -> str:
        return f"{self.folder.name} ({self.family}, transformers on {self.device})"


def as_pixels(images: Sequence[np.ndarray]) -> Any:
    """Same-sized RGB 0–1 images → a [B,H,W,3] float32 tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.stack(images), dtype=np.float32))


__all__ = ["CLIP", "SIGLIP", "Encoder", "TransformersEncoder", "as_pixels", "attention_pool",
           "preprocess", "read_pooling"]
