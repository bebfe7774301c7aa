"""Images the publish tests draw: an anime-like scene, the regions a censor detector's
stand-in finds (textured marker patches), and what covers them — a mosaic of a known block
and grid (painted here with plain loops, independently of `scoring.publish`), a black bar or
white-out, a blur, or nothing.

Markers: "pussy" magenta, "penis" cyan, "nipple_f" yellow — a patch whose every pixel keeps
two channels high and the third low (what `models.yolo_models` detects), with a pattern that
makes neighbouring mosaic blocks differ. Averaging keeps the hue, so a mosaicked or blurred
marker is still found, as a real detector still finds a censored region.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

MARKERS = {"pussy": (0, 2, 1), "penis": (1, 2, 0), "nipple_f": (0, 1, 2)}
"""label → (high channel, high channel, low channel)."""

PALETTE = ((250, 228, 212), (236, 200, 180), (120, 80, 60), (90, 90, 100), (200, 200, 205),
           (242, 180, 190), (60, 40, 40), (180, 140, 110))
"""Skin, hair, cloth and outline colours that never look like a marker."""


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An anime-like uint8 scene: a soft gradient, flat shapes with dark outlines."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([235 - 30 * y / height, 225 - 20 * x / width, 215 + 0 * x], -1)
    img = PILImage.fromarray(base.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        s = int(rng.integers(max(8, width // 20), max(9, width // 4)))
        colour = PALETTE[int(rng.integers(0, len(PALETTE)))]
        if rng.random() < 0.5:
            d.ellipse([cx, cy, cx + s, cy + int(s * rng.uniform(0.5, 1.5))], fill=colour,
                      outline=(50, 30, 30), width=2)
        else:
            d.polygon([(cx, cy), (cx + s, cy + int(rng.integers(-s, s))),
                       (cx + int(rng.integers(-s, s)), cy + s)], fill=colour, outline=(50, 30, 30))
    return np.asarray(img).copy()


def mark(img: np.ndarray, box: tuple[int, int, int, int], label: str = "pussy",
         scale: float = 1.0) -> np.ndarray:
    """`img` with a marker patch of `label` filling `box` (x0, y0, x1, y1); `scale` enlarges
    its shading and lines (the same drawing at a larger size)."""
    x0, y0, x1, y1 = box
    hi1, hi2, lo = MARKERS[label]
    y, x = np.mgrid[y0:y1, x0:x1]
    u, v = (x - x0) / scale, (y - y0) / scale
    grain = np.random.default_rng(x0 * 7919 + y0).random(x.shape)  # fine detail, like skin
    shade = 0.5 + 0.5 * np.sin(u / 13.0 + v / 29.0) * np.cos(v / 11.0)
    lines = ((u + 2 * v) % 23 < 2)  # line art, drawn in the marker's dark tone
    v = np.where(lines, 0.55, 0.58 + 0.32 * shade + 0.1 * grain)
    patch = np.zeros((y1 - y0, x1 - x0, 3))
    patch[..., hi1] = v
    patch[..., hi2] = v * 0.9
    patch[..., lo] = 0.06 * v
    out = img.copy()
    out[y0:y1, x0:x1] = np.round(patch * 255).astype(np.uint8)
    return out


def paint_mosaic(img: np.ndarray, box: tuple[int, int, int, int], block: int,
                 grid: tuple[int, int] = (0, 0)) -> np.ndarray:
    """`box` mosaicked with `block` px blocks whose grid starts at (x, y) ≡ `grid` (mod
    block); blocks cut by the box edge average the pixels inside it (a mosaic painted on
    a selection)."""
    out = img.copy()
    x0, y0, x1, y1 = box
    gx, gy = grid
    for by in range(y0 - (y0 - gy) % block, y1, block):
        for bx in range(x0 - (x0 - gx) % block, x1, block):
            ya, yb = max(by, y0), min(by + block, y1)
            xa, xb = max(bx, x0), min(bx + block, x1)
            cell = img[ya:yb, xa:xb].reshape(-1, 3).astype(np.float64)
            out[ya:yb, xa:xb] = np.round(cell.mean(axis=0)).astype(np.uint8)
    return out


def paint_bar(img: np.ndarray, box: tuple[int, int, int, int], colour: str = "black",
              inset: int = 0) -> np.ndarray:
    """`box` (shrunk by `inset` px on each side) painted solid black or white."""
    out = img.copy()
    x0, y0, x1, y1 = box
    out[y0 + inset:y1 - inset, x0 + inset:x1 - inset] = 0 if colour == "black" else 255
    return out


def paint_blur(img: np.ndarray, box: tuple[int, int, int, int], radius: float = 6) -> np.ndarray:
    """`box` replaced by a Gaussian blur of the image."""
    out = img.copy()
    x0, y0, x1, y1 = box
    blurred = np.asarray(PILImage.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))
    out[y0:y1, x0:x1] = blurred[y0:y1, x0:x1]
    return out


def as_float(img: np.ndarray) -> np.ndarray:
    """uint8 → the float32 0–1 image sources receive."""
    return img.astype(np.float32) / 255.0
