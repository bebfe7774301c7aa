"""Stand-ins for the aesthetic models, in each real repository's layout and I/O contract.

- `build_anime_aesthetic`: a deepghs/anime_aesthetic model folder — `model.onnx` with input
  `input` NCHW [N,3,S,S] (RGB/255, (x−0.5)/0.5) and outputs `embedding` then `output` (softmax
  over seven classes, in `meta.json`'s order: masterpiece … worst, as the repository's card
  lists them), `meta.json` (`labels`) and `samples.npz` (`arr_0`, 2×K: sorted scores,
  percentiles 0–1). The logits are the per-channel means of the input through a 3×7 matrix,
  so a test picks which colour looks like a masterpiece.
- `save_head`: a head's weights with its authors' keys and dtype — v2.5 as a bf16 `.pth`
  (`scoring_head.*`), Waifu Scorer v3 as `model.safetensors` (`layers.*`, BatchNorm
  buffers), LAION as an fp32 `.pth` (`layers.*`).
- `build_clip` / `build_siglip`: tiny random vision encoders saved once with `save_pretrained`
  in fp16 (the key layout ComfyUI's loader reads, SigLIP with its pooling head), plus the JSON
  config ComfyUI's `ClipVisionModel` takes for them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

META_ORDER = ("masterpiece", "best", "great", "good", "normal", "low", "worst")
SCORE_ORDER = tuple(reversed(META_ORDER))


def samples(k: int = 64) -> np.ndarray:
    """A 2×K score→percentile table shaped like the real one (an S-curve over 0–6)."""
    x = np.linspace(0.0, 6.0, k)
    y = 1.0 / (1.0 + np.exp(-(x - 3.0) * 1.5))
    y = (y - y[0]) / (y[-1] - y[0])
    return np.stack([x, y])


def build_anime_aesthetic(folder: Path, weights: np.ndarray | None = None, *, size: int = 448,
                          batch: int | str = "batch", table: np.ndarray | None = None,
                          filler: int = 0) -> Path:
    """The folder; `weights` is 3×7 over (R, G, B) means in −1…1, columns in SCORE_ORDER
    (worst … masterpiece). Default: redder → better, bluer → worse. `filler` bytes of unused
    weights make model.onnx as big as a download test needs."""
    folder.mkdir(parents=True, exist_ok=True)
    if weights is None:
        weights = np.zeros((3, 7), np.float32)
        weights[0] = np.linspace(-4, 4, 7)
        weights[2] = np.linspace(4, -4, 7)
    by_meta = np.asarray(weights, np.float32)[:, [SCORE_ORDER.index(n) for n in META_ORDER]]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["embedding"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["embedding", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "anime_aesthetic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 7])],
        [numpy_helper.from_array(by_meta, "W"),
         *([numpy_helper.from_array(np.zeros(filler // 4, np.float32), "filler")]
           if filler else [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save_model(model, folder / "model.onnx")
    (folder / "meta.json").write_text(json.dumps({
        "name": folder.name, "labels": list(META_ORDER), "task": "classification"}))
    np.savez(folder / "samples.npz", samples() if table is None else table)
    return folder


def save_head(path: Path, label: str, in_dim: int, *, seed: int = 0, gain: float = 3.0) -> Path:
    """Random weights for head `label` in its authors' file format (by `path`'s suffix); the
    layers are scaled by `gain` and the last bias set mid-range, so different images land
    apart inside the head's published range (as trained weights do)."""
    import torch

    from scoring.sources.embed import heads

    torch.manual_seed(seed)
    head = heads.HEADS[label]
    module = heads.build(head, in_dim)
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m in module:
            if isinstance(m, torch.nn.BatchNorm1d):  # trained running statistics, not 0/1
                m.running_mean.uniform_(-0.01, 0.01)
                m.running_var.uniform_(0.9, 1.1)
                m.num_batches_tracked.fill_(1000)
        for m in linears:
            m.weight.mul_(gain)
        linears[-1].bias.fill_((head.low + head.high) / 2)
    prefix = heads.HEADS[label].prefix
    state = {f"{prefix}.{k}": v for k, v in module.state_dict().items()}
    if label == "aesthetic-v2.5":
        state = {k: v.to(torch.bfloat16) for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        from collections import OrderedDict
        torch.save(OrderedDict(state), str(path))
    return path


def _save(model, folder: Path, comfy_config: dict) -> Path:  # noqa: ANN001
    """save_pretrained in fp16, the weights under `vision_model.*` (the layout of the real
    files and of ComfyUI's loader; transformers 5 saves SigLIP without the prefix and loads
    either), plus ComfyUI's JSON config for the tiny sizes."""
    import torch
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(str(folder))
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    state = {k if k.startswith(("vision_model.", "visual_projection.")) else f"vision_model.{k}":
             v for k, v in state.items()}
    save_file(state, str(weights), metadata={"format": "pt"})
    (folder / "comfy_config.json").write_text(json.dumps(comfy_config))
    return folder


def build_clip(folder: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4,
               projection: int = 48, image_size: int = 224, seed: int = 0) -> Path:
    """A tiny CLIPVisionModelWithProjection (ViT-L/14's layout: patch 14, quick_gelu, a class
    token, pre-layernorm, projection) saved in fp16."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=hidden * 2,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              patch_size=14, image_size=image_size, projection_dim=projection,
                              hidden_act="quick_gelu")
    model = CLIPVisionModelWithProjection(config).eval()
    _widen(model)
    return _save(model, folder, {
        "num_channels": 3, "hidden_act": "quick_gelu", "hidden_size": hidden,
        "image_size": image_size, "intermediate_size": hidden * 2,
        "model_type": "clip_vision_model", "num_attention_heads": heads,
        "num_hidden_layers": layers, "patch_size": 14, "projection_dim": projection})


def build_siglip(folder: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4,
                 image_size: int = 384, seed: int = 0) -> Path:
    """A tiny SiglipVisionModel (so400m-patch14-384's layout: patch 14 at 384, no class token,
    post-layernorm, the attention-pooling head) saved in fp16."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    config = SiglipVisionConfig(hidden_size=hidden, intermediate_size=hidden * 2,
                                num_hidden_layers=layers, num_attention_heads=heads,
                                patch_size=14, image_size=image_size,
                                hidden_act="gelu_pytorch_tanh")
    model = SiglipVisionModel(config).eval()
    _widen(model)
    return _save(model, folder, {
        "num_channels": 3, "hidden_act": "gelu_pytorch_tanh", "hidden_size": hidden,
        "image_size": image_size, "intermediate_size": hidden * 2,
        "model_type": "siglip_vision_model", "num_attention_heads": heads,
        "num_hidden_layers": layers, "patch_size": 14,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})


def _widen(model) -> None:  # noqa: ANN001
    """Spread the random init so different images give clearly different embeddings."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "patch_embedding" in name and p.ndim == 4:
                p.normal_(0.0, 0.2)
