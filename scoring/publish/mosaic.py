"""Apply a compliant mosaic: blocks of the rule's size on the image's own grid (cells start
at multiples of the block from the top-left corner), over each region padded by a margin and
grown to whole blocks; each block takes its pixels' mean colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .measure import Box, clip_box


def padded(box: Box, margin: float, block: int, width: int, height: int) -> Box:
    """`box` grown by `margin` × its width/height on each side, then out to whole blocks
    of the image grid, clipped to the image."""
    x0, y0, x1, y1 = clip_box(box, width, height)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, y0 = int(np.floor((x0 - mx) / block)) * block, int(np.floor((y0 - my) / block)) * block
    x1, y1 = int(np.ceil((x1 + mx) / block)) * block, int(np.ceil((y1 + my) / block)) * block
    return clip_box((x0, y0, x1, y1), width, height)


def apply_mosaic(image: np.ndarray, boxes: Sequence[Box], block: int,
                 margin: float = 0.1) -> np.ndarray:
    """A copy of `image` (HxWxC, any dtype) with every box mosaicked in `block` px blocks
    aligned to the image grid; overlapping boxes share their blocks."""
    if block < 1:
        raise ValueError(f"mosaic block must be at least 1 px, got {block}")
    if margin < 0:
        raise ValueError(f"mosaic margin must not be negative, got {margin}")
    img = np.asarray(image)
    h, w = img.shape[:2]
    out = img.copy()
    ny, nx = -(-h // block), -(-w // block)
    mark = np.zeros((ny, nx), bool)
    for box in boxes:
        x0, y0, x1, y1 = padded(box, margin, block, w, h)
        if x1 > x0 and y1 > y0:
            mark[y0 // block:-(-y1 // block), x0 // block:-(-x1 // block)] = True
    if not mark.any():
        return out
    ys, xs = np.arange(0, h, block), np.arange(0, w, block)
    sums = np.add.reduceat(np.add.reduceat(img.astype(np.float64), ys, axis=0), xs, axis=1)
    counts = np.outer(np.diff(np.append(ys, h)), np.diff(np.append(xs, w)))
    means = sums / counts[:, :, None]
    if np.issubdtype(img.dtype, np.integer):
        means = np.rint(means)
    means = means.astype(img.dtype)
    full = np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:h, :w]
    where = np.repeat(np.repeat(mark, block, axis=0), block, axis=1)[:h, :w]
    out[where] = full[where]
    return out
