"""Same image, same score through both paths: one random-weight encoder per family, saved once
in the layout ComfyUI's loader reads, loaded by ComfyUI's own `ClipVisionModel` (the node's
path, in a ComfyUI subprocess: aesthetic_probe.py) and by transformers from its folder (the
CLI's path, here) — every head gives the same cards either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.models.aesthetic_models import build_clip, build_siglip, save_head

from scoring.sources.embed.encoders import CLIP_MEAN, CLIP_STD, as_pixels, preprocess
from scoring.sources.embed.source import AestheticHead

PROBE = Path(__file__).with_name("aesthetic_probe.py")
REPO = Path(__file__).resolve().parents[2]
HEADS = [("clip", "waifu-scorer-v3", ".safetensors"), ("clip", "laion-aesthetic", ".pth"),
         ("siglip", "aesthetic-v2.5", ".pth")]


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(4):  # not square: CLIP crops, SigLIP squashes
        img = rng.random((150, 200, 3), dtype=np.float32) * 0.4
        img[..., i % 3] += 0.5
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def both_paths(comfy_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("aesthetic")
    enc = {"clip": build_clip(work / "clip_vision" / "clip"),
           "siglip": build_siglip(work / "clip_vision" / "siglip")}
    dims = {"clip": 48, "siglip": 64}
    for family, label, suffix in HEADS:
        save_head(work / "heads" / f"{family}-{label}{suffix}", label, dims[family])
    np.save(work / "images.npy", np.stack(images()))
    r = subprocess.run([sys.executable, str(PROBE), str(comfy_root), str(REPO), str(work)],
                       capture_output=True, text=True, timeout=600, cwd=PROBE.parent)
    assert r.returncode == 0, r.stderr[-4000:]
    comfy = json.loads(r.stdout.strip().splitlines()[-1])
    cli = {}
    for family, label, suffix in HEADS:
        head = work / "heads" / f"{family}-{label}{suffix}"
        result = AestheticHead(head_path=head, encoder=enc[family], device="cpu").score(
            images())
        cli[head.name] = [c[0] for c in result]
    return comfy, cli


def test_comfyui_loads_every_weight_of_the_saved_encoders(both_paths):
    comfy, _ = both_paths
    assert comfy["missing"] == {"clip": [], "siglip": []}


def test_the_cli_preprocesses_exactly_as_comfyui(both_paths):
    comfy, _ = both_paths
    pixels = as_pixels(images()[:1])
    ours = preprocess(pixels, 224, CLIP_MEAN, CLIP_STD, crop=True).flatten()[:4096]
    assert torch.equal(ours, torch.tensor(comfy["pixels"]["clip"], dtype=torch.float32))
    sig = preprocess(pixels, 384, (0.5,) * 3, (0.5,) * 3, crop=False).flatten()[:4096]
    assert torch.equal(sig, torch.tensor(comfy["pixels"]["siglip"], dtype=torch.float32))


@pytest.mark.parametrize(("family", "label", "suffix"), HEADS)
def test_same_image_same_score_both_ways(both_paths, family, label, suffix):
    comfy, cli = both_paths
    name = f"{family}-{label}{suffix}"
    node_cards, cli_cards = comfy["cards"][name], cli[name]
    assert all(c["abstained"] is None for c in node_cards), node_cards
    node = [c["axes"]["appeal"] for c in node_cards]
    ours = [c.axes["appeal"] for c in cli_cards]
    assert len(set(ours)) == len(ours)                      # the images score apart
    assert node == pytest.approx(ours, abs=0.01)             # and alike both ways
    assert [c["confidence"] for c in node_cards] == pytest.approx(
        [c.confidence for c in cli_cards], abs=0.01)
    assert np.argsort(node).tolist() == np.argsort(ours).tolist()
