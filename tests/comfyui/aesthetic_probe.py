"""Run inside a real ComfyUI import (a subprocess of test_aesthetic_heads.py): load the saved
tiny encoders with ComfyUI's own `ClipVisionModel`, score the images with each head through
the node's adapter (`nodes/clip_vision.ComfyEncoder`), and print the cards as JSON on the last
line, with what ComfyUI's loader reported and its preprocessing of one image.
Usage: python aesthetic_probe.py <ComfyUI root> <repo root> <work dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from probe_boot import boot

boot(Path(sys.argv[1]), Path(sys.argv[2]))
work = Path(sys.argv[3])

import comfy.clip_model  # noqa: E402
import comfy.clip_vision  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import numpy as np  # noqa: E402
from saiten_pack.nodes.shared.clip_vision import ComfyEncoder  # noqa: E402
from saiten_pack.scoring.sources.embed.encoders import as_pixels  # noqa: E402
from saiten_pack.scoring.sources.embed.source import AestheticHead  # noqa: E402

folder_paths.add_model_folder_path("clip_vision", str(work / "clip_vision"))
images = list(np.load(work / "images.npy"))
out: dict[str, object] = {"cards": {}, "missing": {}}
for family in ("clip", "siglip"):
    folder = work / "clip_vision" / family
    model = comfy.clip_vision.ClipVisionModel(str(folder / "comfy_config.json"))
    missing, _unexpected = model.load_sd(comfy.utils.load_torch_file(
        str(folder / "model.safetensors")))
    out["missing"][family] = sorted(missing)
    for head in sorted((work / "heads").glob(f"{family}-*")):
        source = AestheticHead(head_path=head, encoder=ComfyEncoder(model))
        result = source.score(images)
        out["cards"][head.name] = [c[0].to_dict() for c in result]
    pixels = as_pixels(images[:1])
    out.setdefault("pixels", {})[family] = comfy.clip_model.clip_preprocess(
        pixels, size=model.image_size, mean=model.image_mean, std=model.image_std,
        crop=family == "clip").flatten()[:4096].tolist()
print(json.dumps(out))
