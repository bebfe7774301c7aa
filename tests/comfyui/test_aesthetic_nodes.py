"""The aesthetic nodes in a real ComfyUI: the best-of-N template as a user runs it — downloads
on, the anime_aesthetic model fetched from the fake hub (conftest), the real KSampler — sends
the K images with the highest appeal (not the first K) to the second KSampler; the CLI gives the
same scores for the same images; a download is cancelled from ComfyUI and resumed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from comfy_harness import REPO
from helpers.models.aesthetic_models import (
    build_anime_aesthetic,
    build_clip,
    build_siglip,
    save_head,
)
from PIL import Image
from test_generation_workflows import frontend_prompt, ids, shrink

from scoring.sources.onnx.aesthetic import DEFAULT_MODEL
from scoring.sources.onnx.aesthetic import REPO as AESTHETIC_REPO

TEMPLATE = REPO / "example_workflows" / "saiten_best_of_n_hires.json"
LINE = re.compile(r"^#(\d+) appeal=([\d.]+) ")
COLOURS = "0.6,0.45,0.4;0.2,0.3,0.9;0.9,0.2,0.1;0.5,0.5,0.5"
"""Image i's paint: the stand-in likes red and dislikes blue, so by appeal 2 > 0 > 3 > 1."""


def appeal_by_index(text: str) -> dict[int, float]:
    """The aesthetic node's "#i appeal=NN …" lines."""
    return {int(m[1]): float(m[2]) for m in map(LINE.match, text.splitlines()) if m}


def test_best_of_n_fetches_the_model_and_hires_the_top_k_by_appeal(comfy, page, sd15,
                                                                   aesthetic_hub):
    prompt, workflow = frontend_prompt(page, TEMPLATE)
    p = shrink(prompt, sd15, zlib.crc32(b"aesthetic"))
    (ks,) = [k for k in ids(p, "KSampler")
             if p[k]["inputs"]["latent_image"][0] in ids(p, "EmptyLatentImage")]
    (dec,) = [k for k in ids(p, "VAEDecode") if p[k]["inputs"]["samples"][0] == ks]
    (flt,) = ids(p, "SaitenScoreFilter")
    (aes,) = ids(p, "SaitenAesthetic")
    assert p[aes]["inputs"]["allow_download"] is True and p[aes]["inputs"]["model"] == \
        DEFAULT_MODEL
    assert p[flt]["inputs"]["axis"] == "appeal" and p[flt]["inputs"]["mode"] == "top_k"
    for node in p.values():  # the scorers see painted frames; the latents stay the sampler's
        for name, value in node["inputs"].items():
            if value == [dec, 0]:
                node["inputs"][name] = ["903", 0]
    p["903"] = {"class_type": "SaitenTestTint", "inputs": {"images": [dec, 0],
                                                           "colours": COLOURS}}
    p["901"] = {"class_type": "SaitenTestDigest", "inputs": {"latent": [ks, 0]}}
    p["902"] = {"class_type": "SaitenTestDigest", "inputs": {"latent": [flt, 4]}}
    h = comfy.run(p, workflow=workflow, timeout=900)

    appeal = appeal_by_index(h.text(aes))
    k = p[flt]["inputs"]["top_k"]
    assert len(appeal) == 4 and len(set(appeal.values())) == 4, appeal  # scores that differ
    top = sorted(appeal, key=lambda i: -appeal[i])[:k]
    assert sorted(top) == [0, 2] != list(range(k))                       # not the first K
    every = h.ui("901")["digest"][0]["latents"]
    chosen = h.ui("902")["digest"][0]["latents"]
    assert sorted(every.index(c) for c in chosen) == sorted(top)        # the K best by appeal
    assert h.text(flt).startswith(f"passed {k}/4")
    files = {path.rsplit("/", 1)[-1] for m, path, _ in aesthetic_hub.requests
             if m == "HEAD" and DEFAULT_MODEL in path}
    assert files == {"model.onnx", "meta.json", "samples.npz"}         # fetched from the hub
    assert (comfy.models_dir / "saiten_aesthetic" / DEFAULT_MODEL / "samples.npz").is_file()


def three_images(comfy, folder: Path) -> tuple[list[str], dict]:
    """Three PNGs in ComfyUI's input folder and in `folder`, and the prompt nodes "1"…"11"
    that load them as one batch (["11", 0])."""
    rng = np.random.default_rng(5)
    names = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        img = (rng.random((96, 96, 3)) * 80 + np.array([[[170, 90, 40], [60, 160, 90],
                                                          [40, 70, 180]][i]])).clip(0, 255)
        name = f"saiten_aes_{i}.png"
        for where in (comfy.input_dir, folder):
            Image.fromarray(img.astype(np.uint8)).save(where / name)
        names.append(name)
    p: dict = {f"{i + 1}": {"class_type": "LoadImage", "inputs": {"image": name}}
               for i, name in enumerate(names)}
    p["10"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}}
    p["11"] = {"class_type": "ImageBatch", "inputs": {"image1": ["10", 0], "image2": ["3", 0]}}
    return names, p


def cli_cards(folder: Path, out: Path, source: str, *options: str) -> dict[str, list[dict]]:
    """Each file's cards from `python -m scoring score folder --sources source …`."""
    args = [a for o in options for a in ("--option", o)]
    r = subprocess.run([sys.executable, "-m", "scoring", "score", str(folder), "--sources",
                        source, *args, "--out", str(out), "--comfy", "off"],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    return {Path(row["file"]).name: row["cards"] for row in rows}


def test_the_cli_gives_the_same_scores_for_the_same_images(comfy, aesthetic_hub, tmp_path):
    """The same PNGs through LoadImage → Saiten Aesthetic and through `python -m scoring
    score` with the model the node downloaded."""
    names, p = three_images(comfy, tmp_path / "in")
    p["12"] = {"class_type": "SaitenAesthetic",
               "inputs": {"images": ["11", 0], "model": DEFAULT_MODEL, "allow_download": True,
                          "batch_size": 2, "keep_loaded": True, "weight": 0.0, "label": ""}}
    p["13"] = {"class_type": "SaitenShowScores", "inputs": {"scores": ["12", 0]}}
    h = comfy.run(p, timeout=300)
    node = appeal_by_index(h.text("12"))
    cli = cli_cards(tmp_path / "in", tmp_path / "report", "aesthetic",
                    f"aesthetic.model={comfy.models_dir / 'saiten_aesthetic' / DEFAULT_MODEL}")
    for i, name in enumerate(names):
        card = next(c for c in cli[name] if c["source"] == "aesthetic")
        assert round(card["axes"]["appeal"], 1) == node[i], (name, card["axes"], node)
    assert len(set(node.values())) == 3


def test_a_download_shows_bytes_is_cancelled_from_comfyui_and_resumes(comfy, aesthetic_hub,
                                                                       tmp_path):
    light = "caformer_s36_v0_ls0.2"
    folder = build_anime_aesthetic(tmp_path / light, size=64, filler=2_000_000)
    aesthetic_hub.add(AESTHETIC_REPO, {f"{light}/{p.name}": p.read_bytes()
                                       for p in folder.iterdir()})
    size = (folder / "model.onnx").stat().st_size
    comfy.refresh_object_info()
    p = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64,
                                                       "batch_size": 1, "color": 0xCC4422}},
         "2": {"class_type": "SaitenAesthetic",
               "inputs": {"images": ["1", 0], "model": light, "allow_download": True,
                          "batch_size": 8, "keep_loaded": False, "weight": 0.0, "label": ""}},
         "3": {"class_type": "SaitenShowScores", "inputs": {"scores": ["2", 0]}}}
    dest = comfy.models_dir / "saiten_aesthetic" / light
    aesthetic_hub.delay = 0.01  # 4 KB per 10 ms: a few seconds for the model
    try:
        with comfy.watch() as events:
            pid = comfy.queue(p)
            at = events.wait_for(lambda m: m["type"] == "progress" and m["data"]["node"] == "2"
                                 and 100_000 < m["data"]["value"] < size, timeout=120)
            comfy.interrupt()
        assert at["data"]["max"] == size                     # a byte bar, of the real size
        h = comfy.wait(pid, timeout=120)
        assert h.message("execution_interrupted") is not None, h.messages
        assert not (dest / "model.onnx").exists()             # nothing looks complete
        parts = [f for f in dest.iterdir() if f.name.endswith(".part")]
        assert len(parts) == 1 and 0 < parts[0].stat().st_size < size
    finally:
        aesthetic_hub.delay = 0.0
    kept = parts[0].stat().st_size
    again = comfy.run(p, timeout=300)
    assert (dest / "model.onnx").read_bytes() == (folder / "model.onnx").read_bytes()
    ranges = [h.get("range") for m, path, h in aesthetic_hub.requests
              if m == "GET" and path.startswith("/cdn/")]
    assert ranges[-1] == f"bytes={kept}-" or any(r == f"bytes={kept}-" for r in ranges)
    assert "appeal=" in again.text("2") and not [f for f in dest.iterdir()
                                                 if f.name.endswith(".part")]


def test_heads_over_comfyuis_clip_vision_score_as_the_cli_does(comfy, aesthetic_hub, tmp_path):
    """Saiten Aesthetic Head on CLIP_VISION models ComfyUI built from tiny saved encoders —
    Waifu Scorer v3 downloaded from the hub, a v2.5 head already in models/saiten_aesthetic —
    and the CLI over the same encoder folders: the same scores."""
    clip, siglip = build_clip(tmp_path / "clip"), build_siglip(tmp_path / "siglip")
    vision = comfy.models_dir / "clip_vision"
    vision.mkdir(parents=True, exist_ok=True)
    (vision / "tiny-siglip.safetensors").write_bytes((siglip / "model.safetensors").read_bytes())
    waifu = save_head(tmp_path / "waifu.safetensors", "waifu-scorer-v3", 48)
    aesthetic_hub.add("Eugeoter/waifu-scorer-v3", {"model.safetensors": waifu.read_bytes()})
    v25 = save_head(comfy.models_dir / "saiten_aesthetic" / "mine" / "v25.pth",
                    "aesthetic-v2.5", 64)
    assert "mine/v25.pth" in comfy.refresh_object_info()["SaitenAestheticHead"]["input"][
        "required"]["head"][1]["options"]
    names, p = three_images(comfy, tmp_path / "in")
    common = {"batch_size": 2, "weight": 0.0, "label": ""}
    p["20"] = {"class_type": "SaitenTestCLIPVision", "inputs": {"folder": str(clip)}}
    p["21"] = {"class_type": "SaitenTestCLIPVision", "inputs": {"folder": str(siglip)}}
    p["22"] = {"class_type": "SaitenAestheticHead",
               "inputs": {"images": ["11", 0], "clip_vision": ["20", 0],
                          "head": "waifu-scorer-v3", "allow_download": True, **common}}
    p["23"] = {"class_type": "SaitenAestheticHead",
               "inputs": {"images": ["11", 0], "clip_vision": ["21", 0], "head": "mine/v25.pth",
                          "allow_download": False, "scores": ["22", 0], **common}}
    p["24"] = {"class_type": "SaitenShowScores", "inputs": {"scores": ["23", 0]}}
    h = comfy.run(p, timeout=600)
    downloaded = comfy.models_dir / "saiten_aesthetic" / "waifu-scorer-v3" / "model.safetensors"
    assert downloaded.read_bytes() == waifu.read_bytes()
    for node, head, encoder, label in (("22", downloaded, clip, "waifu-scorer-v3"),
                                       ("23", v25, siglip, "aesthetic-v2.5")):
        shown = appeal_by_index(h.text(node))
        assert len(shown) == 3 and len(set(shown.values())) == 3, h.text(node)
        cli = cli_cards(tmp_path / "in", tmp_path / f"report-{label}", "aesthetic-head",
                        f"aesthetic-head.head={head}", f"aesthetic-head.encoder={encoder}",
                        "aesthetic-head.device=cpu")
        for i, name in enumerate(names):
            card = next(c for c in cli[name] if c["source"] == label)
            assert round(card["axes"]["appeal"], 1) == shown[i], (label, name, card, shown)
