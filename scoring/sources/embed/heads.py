"""Aesthetic heads: small MLPs over an image encoder's L2-normalised embedding.

Each head is rebuilt here as the `nn.Sequential` its authors trained, so their own weight files
load as they are (keys checked, shapes checked, nothing else accepted):

- **aesthetic-predictor v2.5** (discus0434/aesthetic-predictor-v2-5, AGPL-3.0): over SigLIP
  so400m-patch14-384's pooled output (`pooler_output`, 1152); `scoring_head.{0,2,4,6,8}`
  Linear 1152→1024→128→64→16→1 with dropout between; score 1–10, 5.5+ "great".
- **Waifu Scorer v3** (Eugeoter/waifu-scorer-v3, openrail): over CLIP ViT-L/14's image
  embedding (`image_embeds`, 768); `layers.*` Linear 768→2048→512→256→128→32→1, ReLU, and
  BatchNorm1d after the first four (eval mode); score clamped to 0–10.
- **LAION improved aesthetic predictor** (christophschuhmann/improved-aesthetic-predictor,
  sac+logos+ava1-l14-linearMSE, Apache-2.0): over the same CLIP embedding;
  `layers.{0,2,4,6,7}` Linear 768→1024→128→64→16→1, no activations; score about 1–10.

The score is mapped linearly onto 0–100 from its published range. The confidence comes from
the head's own spread: the head is run again with its dropout on (fixed seed), and the
standard deviation of those scores on the 0–100 scale, over 50 (half the scale), is taken
from 1 — the same "spread over the widest spread" as the VLM logprob and ONNX aesthetic cards.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import SourceError

CLIP, SIGLIP = "clip", "siglip"
"""Encoder families: CLIP ViT-L/14 (`image_embeds`) and SigLIP so400m-patch14-384
(`pooler_output`)."""

MC_PASSES = 16
MAX_STD = 50.0


@dataclass(frozen=True)
class Head:
    """One head's facts: the cards' label, the encoder family it reads, its layers
    ((kind, out) with kind "linear", "relu", "bn", "dropout:p"), its published score range."""

    label: str
    family: str
    layers: tuple[tuple[str, float], ...]
    low: float
    high: float
    prefix: str = "layers"

    def to_100(self, raw: float) -> float:
        """The raw score on 0–100 (clamped)."""
        return max(0.0, min(100.0, (raw - self.low) / (self.high - self.low) * 100.0))


def _mlp(*spec: Any) -> tuple[tuple[str, float], ...]:
    return tuple((s, 0.0) if isinstance(s, str) else s for s in spec)


HEADS: dict[str, Head] = {
    "aesthetic-v2.5": Head(
        "aesthetic-v2.5", SIGLIP, _mlp(("linear", 1024), ("dropout", 0.5), ("linear", 128),
                                       ("dropout", 0.5), ("linear", 64), ("dropout", 0.5),
                                       ("linear", 16), ("dropout", 0.2), ("linear", 1)),
        1.0, 10.0, prefix="scoring_head"),
    "waifu-scorer-v3": Head(
        "waifu-scorer-v3", CLIP, _mlp(
            ("linear", 2048), "relu", ("bn", 2048), ("dropout", 0.3),
            ("linear", 512), "relu", ("bn", 512), ("dropout", 0.3),
            ("linear", 256), "relu", ("bn", 256), ("dropout", 0.2),
            ("linear", 128), "relu", ("bn", 128), ("dropout", 0.1),
            ("linear", 32), "relu", ("linear", 1)),
        0.0, 10.0),
    "laion-aesthetic": Head(
        "laion-aesthetic", CLIP, _mlp(("linear", 1024), ("dropout", 0.2), ("linear", 128),
                                      ("dropout", 0.2), ("linear", 64), ("dropout", 0.1),
                                      ("linear", 16), ("linear", 1)),
        1.0, 10.0),
}
"""The known heads by label."""


def build(head: Head, in_dim: int) -> Any:
    """The head's `nn.Sequential` (random weights) for an embedding of `in_dim`; its
    state-dict keys are the file's without the `prefix.`."""
    import torch.nn as nn

    mods: list[nn.Module] = []
    width = in_dim
    for kind, arg in head.layers:
        if kind == "linear":
            mods.append(nn.Linear(width, int(arg)))
            width = int(arg)
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "bn":
            mods.append(nn.BatchNorm1d(int(arg)))
        else:
            mods.append(nn.Dropout(arg))
    return nn.Sequential(*mods)


def read_state(path: Path) -> dict[str, Any]:
    """A head's weights: safetensors, or a plain state dict in a .pth/.pt (loaded with
    `weights_only=True`: tensors only, never code); read once per file version."""
    if not path.is_file():
        raise SourceError(f"head file not found: {path}")
    st = path.stat()
    return dict(_read_state(str(path.resolve()), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _read_state(name: str, _size: int, _mtime: int) -> dict[str, Any]:
    import torch

    path = Path(name)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise SourceError(f"{path.name}: not a readable head ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SourceError(f"{path.name}: not a state dict of tensors")
    return dict(state)


def identify(state: dict[str, Any]) -> Head:
    """Which known head these weights are, by their keys."""
    keys = set(state)
    for head in HEADS.values():
        if keys == set(build_keys(head)):
            return head
    raise SourceError(f"unknown head: {len(keys)} tensors ({', '.join(sorted(keys)[:4])}…) — "
                      f"expected one of {', '.join(HEADS)}")


def build_keys(head: Head) -> list[str]:
    """The state-dict keys the head's authors' files hold."""
    out = []
    for i, (kind, _) in enumerate(head.layers):
        p = f"{head.prefix}.{i}"
        if kind == "linear":
            out += [f"{p}.weight", f"{p}.bias"]
        elif kind == "bn":
            out += [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var",
                    f"{p}.num_batches_tracked"]
    return out


def load(path: Path) -> tuple[Head, Any, int]:
    """(facts, module in eval mode with the file's weights in float32, embedding width)."""
    state = read_state(path)
    head = identify(state)
    first = state[f"{head.prefix}.0.weight"]
    if first.ndim != 2:
        raise SourceError(f"{path.name}: the first layer is not a linear layer")
    in_dim = int(first.shape[1])
    module = build(head, in_dim)
    cut = len(head.prefix) + 1
    try:
        module.load_state_dict({k[cut:]: v.float() if v.is_floating_point() else v
                                for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise SourceError(f"{path.name}: the weights do not fit {head.label} "
                          f"({str(e).splitlines()[0]})") from e
    return head, module.eval(), in_dim


def scores(head: Head, module: Any, embeds: Any, *, seed: int = 0
           ) -> tuple[list[float], list[float], list[float]]:
    """(raw scores, scores on 0–100, confidences) for L2-normalised `embeds` [N, D]: the
    eval-mode score, and 1 − std/50 of MC_PASSES dropout-on passes (fixed seed, BatchNorm
    kept in eval)."""
    import torch

    with torch.inference_mode():
        x = embeds.float()
        raw = module(x).reshape(-1)
        gen = torch.Generator().manual_seed(seed)
        passes = []
        for _ in range(MC_PASSES):
            h = x
            for layer in module:
                if isinstance(layer, torch.nn.Dropout) and layer.p > 0:
                    keep = torch.rand(h.shape, generator=gen) >= layer.p
                    h = h * keep / (1.0 - layer.p)
                else:
                    h = layer(h)
            passes.append(h.reshape(-1))
        spread = torch.stack(passes)
    values = [head.to_100(float(r)) for r in raw]
    stds = [float(torch.tensor([head.to_100(float(v)) for v in spread[:, i]]).std())
            for i in range(spread.shape[1])]
    return [float(r) for r in raw], values, [max(0.0, 1.0 - s / MAX_STD) for s in stds]


__all__ = ["CLIP", "HEADS", "SIGLIP", "Head", "build", "build_keys", "identify", "load",
           "read_state", "scores"]
