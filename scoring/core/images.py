"""The one image form sources receive, and conversions into it.

Every source gets `Image`: a float32 array HxWx3, RGB, nominally 0–1. It may still hold NaN or
inf (a broken VAE decode): the technical check looks for exactly that, and `to_uint8` /
`to_pil` clean it for models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile, ImageSequence

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


def _float_range(a: np.ndarray) -> np.ndarray:
    """Float pixels as 0–1: kept when their finite values lie in about 0–1, else taken as
    0–255 (PIL's convention for mode F). NaN and inf stay as they are."""
    finite = a[np.isfinite(a)]
    return a / 255.0 if finite.size and float(np.abs(finite).max()) > 1.5 else a


def from_pil(img: PILImage.Image) -> Image:
    """A PIL image of any mode → `Image`: alpha over white, palette handled, 16-bit and 32-bit
    integers scaled from 0–65535 (as ComfyUI's LoadImage does), floats kept with their NaN/inf."""
    if img.mode.startswith("I"):  # I;16, I;16B, I;16L, I (16-bit PNGs open as one of these)
        return as_rgb(np.asarray(img, dtype=np.float32) / 65535.0)
    if img.mode == "F":
        return as_rgb(_float_range(np.asarray(img, dtype=np.float32)))
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return as_rgb(np.asarray(img))


_ORIENT = {  # EXIF orientation → the numpy equivalent of PIL's ImageOps.exif_transpose
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}


def orient(image: np.ndarray, orientation: int | None) -> np.ndarray:
    """`image` (HxW[xC]) turned upright by its EXIF orientation tag (1–8; others: as is)."""
    turn = _ORIENT.get(orientation or 1)
    return np.ascontiguousarray(turn(image)) if turn else image


def _frames(img: PILImage.Image) -> list[Image]:
    """Every frame as LoadImage reads them: each turned upright by its EXIF orientation,
    frames of another size than the first skipped, only the first of an MPO."""
    out: list[Image] = []
    for frame in ImageSequence.Iterator(img):
        frame.load()
        a = orient(from_pil(frame), frame.getexif().get(_ORIENTATION))
        if out and a.shape != out[0].shape:
            continue
        out.append(a)
        if img.format == "MPO":
            break
    return out


def _tiff(path: Path) -> list[Image]:
    """A TIFF that PIL cannot decode (float RGB, most often) read with tifffile, when it is
    installed; NaN/inf kept, integers scaled from their dtype's range."""
    try:
        import tifffile
    except ImportError:
        raise BadImage(f"{path.name}: PIL cannot read this TIFF (float RGB?); "
                       "`pip install tifffile` reads it") from None
    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(_ORIENTATION)
            a = tif.series[0].asarray()
    except Exception as e:  # tifffile's own errors for a broken file
        raise BadImage(f"{path.name}: cannot read image ({e})") from e
    stack = a if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)) else a[None]
    frames = []
    for f in stack:
        f = _float_range(f.astype(np.float32)) if np.issubdtype(f.dtype, np.floating) else f
        frames.append(orient(as_rgb(f), tag.value if tag else None))
    return frames


_ORIENTATION = 0x0112


def load_frames(path: str | Path) -> list[Image]:
    """Every frame of an image file, as ComfyUI's LoadImage reads it (a truncated file too:
    its missing rows come out black, for the technical check to find). Raises BadImage with
    the file name when it cannot be decoded."""
    path = Path(path)
    try:
        try:
            with PILImage.open(path) as img:
                return _frames(img)
        except OSError as e:  # a truncated file: read what is there, as LoadImage does
            if isinstance(e, PILImage.UnidentifiedImageError):
                raise
            with PILImage.open(path) as img:
                ImageFile.LOAD_TRUNCATED_IMAGES, before = True, ImageFile.LOAD_TRUNCATED_IMAGES
                try:
                    return _frames(img)
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = before
    except PILImage.UnidentifiedImageError as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _tiff(path)
        raise BadImage(f"{path.name}: cannot read image ({e})") from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three for bad files
        raise BadImage(f"{path.name}: cannot read image ({e})") from e


def load(path: str | Path) -> Image:
    """The first frame of an image file (see `load_frames`)."""
    return load_frames(path)[0]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
