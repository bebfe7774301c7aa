"""What the overnight CLI tests share: folders of PNGs as ComfyUI's SaveImage writes them
(pixels plus the API graph as `prompt`), the sources they run, and reading a run's report
folder back (report.jsonl, the score cache)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

SOURCES = ("--sources", "technical,nudenet", "--min-sources", "1")


def comfy_png(path: Path, seed: int, prompt: str, rng: np.random.Generator) -> Path:
    """A PNG like ComfyUI's SaveImage writes: pixels plus the API graph as `prompt`."""
    graph = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.ckpt"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad", "clip": ["4", 1]}},
    }
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    pixels = rng.integers(0, 255, (64, 64, 3), np.uint8)
    pixels[:, :32] //= 2  # some structure, so the technical check has an opinion
    PILImage.fromarray(pixels).save(path, "PNG", pnginfo=info)
    return path


def images(folder: Path, n: int, seed0: int = 1000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed0)
    return [comfy_png(folder / f"ComfyUI_{i:05}_.png", seed0 + i, f"prompt {i % 3}", rng)
            for i in range(n)]


def report(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()]


def cached(out: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(out / "scores.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
