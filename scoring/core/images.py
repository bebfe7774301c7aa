"""The one image form sources receive, and conversions into it.

Every source gets `Image`: a float32 array HxWx3, RGB, nominally 0–1. It may still hold NaN or
inf (a broken VAE decode): the technical check looks for exactly that, and `to_uint8` /
`to_pil` clean it for models.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile

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
        scale = float(np.iinfo(a.dtype).max)
        a = a.astype(np.float32)
        a /= scale  # in place: one float copy of a large frame, not two
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


MAX_BAD_PIXELS = 0.01
"""A model scores no image with more NaN/inf pixels than this fraction (a broken decode)."""


def finite(image: Image) -> np.ndarray:
    """The image a model scores: HxWx3 float32 in 0–1, NaN → 0 and ±inf clipped, or BadImage
    when it is not HxWx3 or more than MAX_BAD_PIXELS of it is not finite."""
    img = np.asarray(image, np.float32)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise BadImage(f"expected an HxWx3 image, got shape {tuple(img.shape)}")
    ok = np.isfinite(img)
    if not ok.all():
        frac = float((~ok).any(axis=2).mean())
        if frac > MAX_BAD_PIXELS:
            raise BadImage(f"{frac:.0%} of the pixels are NaN/inf (a broken VAE decode?)")
        img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(img, 0.0, 1.0)


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


MAX_FRAMES = 16
"""Frames read from one file (an animated GIF/WebP/APNG, a multi-page TIFF): the rest are
named as skipped. 300 frames of a small GIF would otherwise decode to gigabytes."""

MAX_PIXELS = 4096 * 4096
"""Pixels of a frame as sources receive it: a larger image is decoded downscaled to fit
(JPEG: at decode time with `draft`; other formats: reduced right after decoding). Every
model looks at 1024 px or less; the technical check at 512."""

MAX_DECODE_PIXELS = 64_000_000
"""The most pixels decoded at full size (about 190 MB as 8-bit RGB), well under Pillow's
decompression-bomb limit (89 MP): a larger image that cannot be decoded downscaled (any
format but JPEG) is refused with the reason."""


@dataclass
class Frame:
    """One decoded frame: `index` in the file, `image`, `note` (e.g. how it was downscaled)
    and `partial`: why only part of it decoded (a truncated file), else ""."""

    index: int
    image: Image
    note: str = ""
    partial: str = ""


def _shrink_to(size: tuple[int, int], limit: int) -> tuple[int, tuple[int, int]]:
    """(integer factor, size) that fits `size` within `limit` pixels."""
    w, h = size
    f = max(1, math.ceil(math.sqrt(w * h / limit)))
    while (w // f) * (h // f) > limit:
        f += 1
    return f, (max(1, w // f), max(1, h // f))


def _too_big(name: str, size: tuple[int, int]) -> BadImage:
    w, h = size
    return BadImage(f"{name}: {w}×{h} px ({w * h / 1e6:.0f} MP) is more than the "
                    f"{MAX_DECODE_PIXELS / 1e6:.0f} MP Saiten decodes (only JPEG is decoded "
                    "downscaled): save it smaller first")


def _plan(img: PILImage.Image, name: str) -> str:
    """Before decoding a frame: refuse it, or (JPEG) ask the decoder for a smaller one.
    Returns a note when the frame will come out downscaled."""
    w, h = img.size
    if w * h <= MAX_PIXELS:
        return ""
    if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK", "YCbCr"):
        _, want = _shrink_to(img.size, MAX_PIXELS)
        img.draft(img.mode, want)  # decodes at 1/2, 1/4 or 1/8 scale: no full-size pixels
    if img.size[0] * img.size[1] > MAX_DECODE_PIXELS:
        raise _too_big(name, (w, h))
    return f"downscaled from {w}×{h} px"


def _fit(img: PILImage.Image) -> PILImage.Image:
    """A decoded frame reduced to at most MAX_PIXELS (box filter)."""
    if img.size[0] * img.size[1] <= MAX_PIXELS:
        return img
    f, size = _shrink_to(img.size, MAX_PIXELS)
    try:
        return img.reduce(f)
    except (ValueError, NotImplementedError):  # a mode reduce() lacks (I;16, …)
        return img.resize(size, PILImage.Resampling.BOX)


def _decode(img: PILImage.Image, name: str, k: int) -> tuple[np.ndarray, str, str]:
    """Frame `k` of the open `img` decoded (as ComfyUI's LoadImage decodes it) and turned
    upright by its EXIF orientation: (pixels, note, partial). A truncated frame is decoded
    as far as its data goes (the rest as PIL fills it) and says so in `partial`, whatever
    the fill colour."""
    note = _plan(img, name)
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # know it when the data runs out
    try:
        img.load()
        return _upright(img), note, ""
    except OSError as e:
        if isinstance(e, PILImage.DecompressionBombError):
            raise
        why = str(e)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    with PILImage.open(img.filename) as again:  # a failed load leaves no usable state
        again.seek(k)
        _plan(again, name)
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            again.load()
            return _upright(again), note, f"{name} is cut short: only part of it decoded " \
                f"({why})"
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def _upright(img: PILImage.Image) -> Image:
    """A loaded frame as `Image`, reduced to MAX_PIXELS and turned upright."""
    return orient(from_pil(_fit(img)), img.getexif().get(_ORIENTATION))


class Frames:
    """The frames of one image file, decoded one at a time as they are iterated (each
    `Frame` is the only one held here): at most `max_frames`, the first only of an MPO,
    frames of another size than the first skipped (as LoadImage does). `total` is how many
    frames the file has, `count` how many are read. BadImage (with the file name) for a
    file or frame that cannot be decoded."""

    def __init__(self, path: str | Path, max_frames: int = MAX_FRAMES) -> None:
        self.path = Path(path)
        self.max_frames = max(1, int(max_frames))
        try:
            with _open(self.path) as img:
                self.total = 1 if img.format == "MPO" else int(getattr(img, "n_frames", 1))
                self.size = img.size
        except _Tiff:
            self.total, self.size = _tiff_shape(self.path)
        self.count = min(self.total, self.max_frames)

    @property
    def skipped(self) -> str:
        """Why some frames are not read ("" when all are)."""
        if self.total <= self.count:
            return ""
        return (f"{self.path.name}: {self.total} frames; the first {self.count} are scored, "
                f"{self.total - self.count} skipped (at most {self.max_frames} frames a file)")

    def __iter__(self) -> Iterator[Frame]:
        name = self.path.name
        try:
            with _open(self.path) as img:
                size = None
                for k in range(self.count):
                    img.seek(k)
                    a, note, partial = _decode(img, name, k)
                    if size is not None and a.shape != size:
                        continue
                    size = a.shape
                    yield Frame(k, a, note, partial)
        except _Tiff:
            yield from _tiff(self.path, self.count)
        except BadImage:
            raise
        except (PILImage.DecompressionBombError, OSError, ValueError, SyntaxError,
                EOFError) as e:  # PIL raises all of these for bad files
            raise BadImage(f"{name}: cannot read image ({e})") from e


class _Tiff(Exception):
    """PIL cannot identify this TIFF: read it with tifffile."""


@contextlib.contextmanager
def _open(path: Path) -> Iterator[PILImage.Image]:
    try:
        with warnings.catch_warnings():  # our own limits say more than Pillow's warning
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img = PILImage.open(path)
    except PILImage.UnidentifiedImageError as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            raise _Tiff from None
        raise BadImage(f"{path.name}: cannot read image ({e})") from e
    except PILImage.DecompressionBombError as e:
        raise BadImage(f"{path.name}: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImage(f"{path.name}: cannot read image ({e})") from e
    with img:
        yield img


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError:
        raise BadImage("PIL cannot read this TIFF (float RGB?); `pip install tifffile` "
                       "reads it") from None
    return tifffile


def _tiff_layout(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(frames, height, width) of a tifffile series shape: HxW, HxWxC, NxHxW, NxHxWxC."""
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)):
        return 1, int(shape[0]), int(shape[1])
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return int(np.prod(shape[:-3])), int(shape[-3]), int(shape[-2])


def _tiff_shape(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames, (width, height)) of a TIFF only tifffile reads, checked against the limits
    before anything is decoded."""
    try:
        with _tifffile().TiffFile(path) as tif:
            n, h, w = _tiff_layout(tuple(tif.series[0].shape))
    except BadImage as e:
        raise BadImage(f"{path.name}: {e}") from None
    except Exception as e:  # tifffile's own errors for a broken file
        raise BadImage(f"{path.name}: cannot read image ({e})") from e
    if w * h > MAX_DECODE_PIXELS:
        raise _too_big(path.name, (w, h))
    return n, (w, h)


def _tiff(path: Path, count: int) -> Iterator[Frame]:
    """A TIFF that PIL cannot decode (float RGB, most often) read with tifffile, one page
    at a time; NaN/inf kept, integers scaled from their dtype's range."""
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(_ORIENTATION)
            pages = tif.pages if len(tif.pages) > 1 else [tif.series[0]]
            k = 0
            for page in pages:
                a = page.asarray()
                for f in (a[None] if _tiff_layout(a.shape)[0] == 1 else a):
                    if k >= count:
                        return
                    fac, _ = _shrink_to((f.shape[1], f.shape[0]), MAX_PIXELS)
                    f = f[::fac, ::fac]
                    f = _float_range(f.astype(np.float32)) \
                        if np.issubdtype(f.dtype, np.floating) else f
                    note = f"downscaled from {a.shape[-2]}×{a.shape[-3]} px" if fac > 1 else ""
                    yield Frame(k, orient(as_rgb(f), tag.value if tag else None), note)
                    k += 1
                del a
    except BadImage:
        raise
    except Exception as e:  # tifffile's own errors for a broken file
        raise BadImage(f"{path.name}: cannot read image ({e})") from e


_ORIENTATION = 0x0112


def load_frames(path: str | Path, max_frames: int = MAX_FRAMES) -> list[Image]:
    """The frames of an image file (see `Frames`), as a list."""
    return [f.image for f in Frames(path, max_frames)]


def load(path: str | Path) -> Image:
    """The first frame of an image file (see `Frames`)."""
    return next(iter(Frames(path, 1))).image


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
