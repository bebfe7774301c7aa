"""The one image form sources receive, and conversions into it.

Every source gets `Image`: a float32 array HxWx3, RGB, nominally 0–1. It may still hold NaN or
inf (a broken VAE decode): the technical check looks for exactly that, and `to_uint8` /
`to_pil` clean it for models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

Image = np.ndarray
"""float32 HxWx3 RGB in 0–1 (may contain NaN/inf)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class BadImage(ValueError):
    """An input that cannot be turned into an RGB image."""


def as_rgb(array: np.ndarray) -> Image:
    """HxW, HxWx1, HxWx3 or HxWx4 (any numeric dtype) → float32 HxWx3 RGB.

    Integer input is scaled from its dtype's range; alpha is composited over white
    (the convention of the taggers). Raises BadImage for anything else.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] not in (1, 3, 4):
        raise BadImage(f"expected an HxWxC image with C in 1/3/4, got shape {tuple(a.shape)}")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32, copy=False)
    else:
        raise BadImage(f"unsupported image dtype {a.dtype}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        alpha = np.clip(np.nan_to_num(a[:, :, 3:4], nan=1.0), 0.0, 1.0)
        a = a[:, :, :3] * alpha + (1.0 - alpha)
    return a


def to_uint8(image: Image) -> np.ndarray:
    """Clean (NaN→0, ±inf clipped) uint8 HxWx3 RGB."""
    clean = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(clean, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_pil(image: Image) -> PILImage.Image:
    """The image as an RGB PIL image (cleaned like `to_uint8`)."""
    return PILImage.fromarray(to_uint8(image), "RGB")


def from_pil(img: PILImage.Image) -> Image:
    """A PIL image of any mode → `Image` (alpha over white, palette and 16-bit handled)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float32)
        return as_rgb(a / (65535.0 if a.max(initial=0) > 255 else 255.0))
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return as_rgb(np.asarray(img))


def load(path: str | Path) -> Image:
    """Read an image file; raises BadImage with the file name when it cannot be decoded."""
    try:
        with PILImage.open(path) as img:
            img.load()
            return from_pil(img)
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three for bad files
        raise BadImage(f"{Path(path).name}: cannot read image ({e})") from e


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
