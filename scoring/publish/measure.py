"""What covers one region of an image, measured on its pixels with numpy alone: a mosaic
(blocks of one colour on a grid — its block size and where the grid starts), a solid black
bar or white-out, a blur, or nothing.

A mosaic is found as a grid: the gaps between colour changes along rows and columns propose
block sizes (and their divisors) and grid offsets; each proposal cuts the region into cells,
and a cell belongs to the mosaic when it is one flat colour that differs from a flat
neighbour more than either varies inside (flat cells enclosed by such cells in their row and
column count too: a mosaic over an even patch). The proposal covering the most of the region
wins; among near ties the largest block does (a 16 px mosaic is also flat on a 8 px grid).
Exact on lossless images (PNG, ComfyUI's tensors); JPEG ringing breaks the flatness — see
docs/publish.md for what survives quality 90.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TOLERANCE = 2
"""A mosaic cell varies by at most this much (0–255) in every channel, and neighbouring
cells (and pixels) differ when a channel differs by more than this: lossless images."""
MAX_BLOCK = 128
"""The largest block size looked for (4000 px under "strict ×2" needs 80)."""
TIE = 0.5
"""Grids covering at least this share of the best one's area count as a tie, and the
largest block among them wins: a mosaic is as flat on a grid of half its block (which loses
less where the mosaic's own edge cuts blocks), while a grid of twice the block covers a few
percent of what the true one does."""
BLACK, WHITE = 24, 232
"""A bar is black (every channel ≤ BLACK) or white (every channel ≥ WHITE)."""
WINDOW = 384
"""Grids are ranked on at most this many px square in the middle of a region."""
SHARE = 0.05
"""A mosaic or bar covering less of the region than this is not what covers it."""
BLUR_RATIO, SOFT = 0.25, 0.25
"""A region with no mosaic or bar is blurred when its detail is under BLUR_RATIO of its
surroundings' and at least SOFT of it changes gently (a flat fill changes nowhere)."""

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels, x1/y1 exclusive."""


@dataclass(frozen=True)
class Cover:
    """What covers a region: `kind` is "mosaic", "bar", "blur" or "nothing"; `block` the
    mosaic's block size in px and `grid` where its grid starts (x mod block, y mod block;
    (0, 0) = aligned to the image); `cover` the share of the region it leaves without detail
    (a mosaic: its grid's flat cells; a bar: the bar); `mosaic` the share in mosaic cells
    (the evidence of a grid) and `bar` the share under a solid black or white (`bar_colour`)
    bar; `detail` the region's detail over its surroundings'."""

    kind: str
    block: int = 0
    grid: tuple[int, int] = (0, 0)
    cover: float = 0.0
    mosaic: float = 0.0
    bar: float = 0.0
    bar_colour: str = ""
    detail: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cover:
        grid = d.get("grid") or (0, 0)
        return cls(kind=str(d.get("kind", "nothing")), block=int(d.get("block", 0)),
                   grid=(int(grid[0]), int(grid[1])), cover=float(d.get("cover", 0.0)),
                   mosaic=float(d.get("mosaic", 0.0)),
                   bar=float(d.get("bar", 0.0)), bar_colour=str(d.get("bar_colour", "")),
                   detail=float(d.get("detail", 1.0)))


def clip_box(box: Box, width: int, height: int) -> Box:
    """`box` rounded and clipped to the image (possibly empty; empty when not finite)."""
    values = [float(v) for v in box]
    if len(values) != 4 or not all(np.isfinite(values)):
        return 0, 0, 0, 0
    x0, y0, x1, y1 = (round(v) for v in values)
    x0, x1 = sorted((min(max(x0, 0), width), min(max(x1, 0), width)))
    y0, y1 = sorted((min(max(y0, 0), height), min(max(y1, 0), height)))
    return x0, y0, x1, y1


def measure(image: np.ndarray, box: Box, tolerance: int = TOLERANCE) -> Cover:
    """What covers `box` of `image` (uint8 HxWx3); `tolerance` see TOLERANCE."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"measure wants a uint8 HxWx3 image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box = clip_box(box, w, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return Cover("nothing")
    a = img.astype(np.int16)
    block, grid, mosaic, flat = find_mosaic(a, box, tolerance)
    bar, colour = solid_share(a[y0:y1, x0:x1])
    detail = detail_ratio(a, box)
    if block and mosaic >= bar:
        kind, cover = "mosaic", flat
    elif bar >= SHARE:
        kind, cover, block, grid = "bar", bar, 0, (0, 0)
    else:
        kind = "blur" if detail < BLUR_RATIO and soft_share(a[y0:y1, x0:x1]) >= SOFT \
            else "nothing"
        cover, block, grid = 0.0, 0, (0, 0)
    return Cover(kind, block, grid, round(cover, 4), round(mosaic, 4), round(bar, 4),
                 colour if bar >= SHARE else "", round(detail, 4))


# -- the mosaic ---------------------------------------------------------------------------
def _edges(a: np.ndarray, axis: int, tol: int) -> np.ndarray:
    """Where neighbouring pixels differ along `axis` (1: between x and x+1; 0: y and y+1)."""
    return np.abs(np.diff(a, axis=axis)).max(axis=2) > tol


def _gaps(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, gap to the previous edge in the same line) of every edge but each line's
    first; `edges` is lines × positions."""
    line, pos = np.nonzero(edges)
    same = line[1:] == line[:-1]
    return pos[1:][same], np.diff(pos)[same]


def _proposals(a: np.ndarray, box: Box, tol: int) -> list[tuple[int, int, int]]:
    """(block, x offset, y offset) grids worth testing, from the gaps between edges."""
    x0, y0, x1, y1 = box
    crop = a[y0:y1, x0:x1]
    limit = min(MAX_BLOCK, max(x1 - x0, y1 - y0) // 2)
    out: set[tuple[int, int, int]] = set()
    for t in sorted({tol, 0}):  # blocks that differ by a level or two show at 0
        px, gx = _gaps(_edges(crop, 1, t))
        py, gy = _gaps(_edges(crop, 0, t).T)
        gaps = np.concatenate([gx, gy])
        gaps = gaps[(gaps >= 2) & (gaps <= limit)]
        if not gaps.size:
            continue
        counts = np.bincount(gaps)
        top = [int(g) for g in np.argsort(-counts, kind="stable")[:6] if counts[g] > 0]
        for b in {d for t in top for d in range(2, t + 1) if t % d == 0}:
            out.update((b, x, y) for x in _offsets(px, gx, b, x0)
                       for y in _offsets(py, gy, b, y0))
    return sorted(out, reverse=True)


def _offsets(pos: np.ndarray, gaps: np.ndarray, b: int, origin: int) -> list[int]:
    """The likeliest grid offsets (mod b) for block `b`: where edges whose gap to the
    previous one is a multiple of b fall (an edge at x sits before the cell starting x+1)."""
    on = pos[gaps % b == 0]
    if not on.size:
        return [origin % b]
    counts = np.bincount((on + 1 + origin) % b, minlength=b)
    best = [int(o) for o in np.argsort(-counts, kind="stable")[:2] if counts[o] > 0]
    return best or [origin % b]


def _grid(a: np.ndarray, box: Box, b: int, ox: int, oy: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """The box cut into the cells of size b of the grid starting at (ox, oy) mod b:
    (pixels ny×b×nx×b×3, range inside each cell, mean colour of each cell, pixel origin of
    the first cell). Only pixels inside the box count: a cell the box cuts is completed with
    the box's edge pixels (a mosaic painted on a selection ends in cut blocks, and so does
    one the box ends inside)."""
    x0, y0, x1, y1 = box
    cx0, cy0 = x0 - (x0 - ox) % b, y0 - (y0 - oy) % b
    cx1, cy1 = x1 + (-(x1 - ox)) % b, y1 + (-(y1 - oy)) % b
    pad = ((y0 - cy0, cy1 - y1), (x0 - cx0, cx1 - x1), (0, 0))
    crop = np.pad(a[y0:y1, x0:x1], pad, mode="edge")
    cells = crop.reshape((cy1 - cy0) // b, b, (cx1 - cx0) // b, b, 3)
    spread = (cells.max(axis=(1, 3)) - cells.min(axis=(1, 3))).max(axis=2)
    return cells, spread, cells.mean(axis=(1, 3)), (cx0, cy0)


def _mosaic_cells(spread: np.ndarray, mean: np.ndarray, tol: int) -> np.ndarray:
    """The cells that belong to a mosaic (see the module docstring)."""
    flat = spread <= tol
    hit = np.zeros_like(flat)
    for axis in (0, 1):
        d = np.abs(np.diff(mean, axis=axis)).max(axis=2)
        s = np.maximum(np.delete(spread, -1, axis), np.delete(spread, 0, axis))
        pair = np.delete(flat, -1, axis) & np.delete(flat, 0, axis) & (d > tol + 2 * s)
        if axis == 0:
            hit[:-1] |= pair
            hit[1:] |= pair
        else:
            hit[:, :-1] |= pair
            hit[:, 1:] |= pair
    enclosed = flat.copy()
    for axis in (0, 1):
        ahead = np.maximum.accumulate(hit, axis=axis)
        behind = np.flip(np.maximum.accumulate(np.flip(hit, axis), axis=axis), axis)
        enclosed &= ahead & behind
    return hit | enclosed


def _spread(seed: np.ndarray, through: np.ndarray) -> np.ndarray:
    """`seed` grown through 4-connected cells of `through` (a flood fill)."""
    grown = seed & through
    while True:
        nxt = grown.copy()
        nxt[1:] |= grown[:-1]
        nxt[:-1] |= grown[1:]
        nxt[:, 1:] |= grown[:, :-1]
        nxt[:, :-1] |= grown[:, 1:]
        nxt &= through
        if (nxt == grown).all():
            return grown
        grown = nxt


def _grid_areas(a: np.ndarray, box: Box, b: int, ox: int, oy: int, tol: int
                ) -> tuple[int, int]:
    """(pixels of `box` in mosaic cells, pixels of `box` in flat cells joined to them) on
    this grid."""
    _, spread, mean, (cx0, cy0) = _grid(a, box, b, ox, oy)
    cells = _mosaic_cells(spread, mean, tol)
    if cells.sum() < 4:
        return 0, 0
    x0, y0, x1, y1 = box
    # per cell, how many of its pixels lie inside the box (edge cells are cut)
    xs = np.clip(np.arange(cells.shape[1] + 1) * b + cx0, x0, x1)
    ys = np.clip(np.arange(cells.shape[0] + 1) * b + cy0, y0, y1)
    px = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    return int((px * cells).sum()), int((px * _spread(cells, spread <= tol)).sum())


def find_mosaic(a: np.ndarray, box: Box, tol: int = TOLERANCE
                ) -> tuple[int, tuple[int, int], float, float]:
    """(block, (x offset, y offset), share of the box in mosaic cells, share of the box in
    flat cells of that grid) for the mosaic in `box` of the int16 image `a`; block 0 when
    there is none. The flat share is what the mosaic leaves without detail finer than its
    blocks: its cells, and the flat patches they touch (which no mosaic could change)."""
    x0, y0, x1, y1 = box
    total = (x1 - x0) * (y1 - y0)
    win = _window(box)  # grids are ranked on the middle of a large box, then measured whole
    share = (win[2] - win[0]) * (win[3] - win[1])
    scored = [(*_grid_areas(a, win, b, ox, oy, tol), b, ox, oy)
              for b, ox, oy in _proposals(a, win, tol)]
    best = max((s[0] for s in scored), default=0)
    if best < SHARE * share:
        return 0, (0, 0), best / share, 0.0
    _, _, b, ox, oy = max((s for s in scored if s[0] >= TIE * best), key=lambda s: (s[2], s[0]))
    d = _hidden_block(a, win, b, ox, oy, tol)
    b, ox, oy = d, ox % d, oy % d
    area, flat = _grid_areas(a, box, b, ox, oy, tol)
    return b, (ox, oy), area / total, flat / total


def _window(box: Box) -> Box:
    """The middle WINDOW × WINDOW px of `box` (all of a smaller one)."""
    x0, y0, x1, y1 = box
    w, h = min(x1 - x0, WINDOW), min(y1 - y0, WINDOW)
    cx, cy = x0 + (x1 - x0 - w) // 2, y0 + (y1 - y0 - h) // 2
    return cx, cy, cx + w, cy + h


def _hidden_block(a: np.ndarray, box: Box, b: int, ox: int, oy: int, tol: int) -> int:
    """The true block of a mosaic found on grid `b`: where its cells hold changes within
    the tolerance, and those fall on the lines of a finer grid d | b (neighbouring blocks
    that differ by a level or two), d; else b."""
    crop, spread, mean, _ = _grid(a, box, b, ox, oy)
    inside = _mosaic_cells(spread, mean, tol)[:, None, :, None]
    dx = (np.abs(np.diff(crop, axis=3)).max(axis=4) > 0) & inside
    dy = (np.abs(np.diff(crop, axis=1)).max(axis=4) > 0) & inside
    counts = dx.sum(axis=(0, 1, 2)) + dy.sum(axis=(0, 2, 3))  # by offset 1 … b-1 in a cell
    total = int(counts.sum())
    if not total:
        return b
    offsets = [k + 1 for k in range(b - 1) if counts[k] >= 0.05 * total]
    d = int(np.gcd.reduce([b, *offsets]))
    return d if d >= 2 else b


# -- bars and blur ------------------------------------------------------------------------
def solid_share(crop: np.ndarray) -> tuple[float, str]:
    """(share, "black"/"white") of the crop painted over in solid black or white: pixels of
    that colour whose 3×3 neighbourhood is all that colour (an outline is not a bar)."""
    best, colour = 0.0, ""
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return best, colour
    for name, mask in (("black", (crop <= BLACK).all(axis=2)),
                       ("white", (crop >= WHITE).all(axis=2))):
        core = mask[1:-1, 1:-1].copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                core &= mask[dy:dy + mask.shape[0] - 2, dx:dx + mask.shape[1] - 2]
        grown = np.zeros_like(mask)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                grown[dy:dy + core.shape[0], dx:dx + core.shape[1]] |= core
        share = float(grown.mean())
        if share > best:
            best, colour = share, name
    return best, colour


def soft_share(crop: np.ndarray) -> float:
    """The share of pixels that differ from their right or lower neighbour by 1–12 levels
    (a blur's gentle slopes; flat fills and hard edges are not soft)."""
    if crop.shape[0] < 2 or crop.shape[1] < 2:
        return 0.0
    dx = np.abs(np.diff(crop, axis=1)).max(axis=2)[:-1]
    dy = np.abs(np.diff(crop, axis=0)).max(axis=2)[:, :-1]
    d = np.maximum(dx, dy)
    return float(((d >= 1) & (d <= 12)).mean())


def _detail(a: np.ndarray) -> np.ndarray:
    """Per pixel, how much it differs from the mean of its 4 neighbours (grey levels)."""
    g = a.mean(axis=2)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return np.zeros((0,))
    c = g[1:-1, 1:-1]
    return np.abs(4 * c - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]) / 4


def detail_ratio(a: np.ndarray, box: Box) -> float:
    """Mean detail inside `box` over that of a ring around it as wide as half the box
    (1.0 when the ring has no detail to compare with)."""
    h, w = a.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = max((x1 - x0) // 2, 4), max((y1 - y0) // 2, 4)
    X0, Y0, X1, Y1 = max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, w), min(y1 + my, h)
    d = _detail(a[Y0:Y1, X0:X1])
    if not d.size:
        return 1.0
    inside = np.zeros(d.shape, bool)  # d[i, j] is the pixel (Y0 + 1 + i, X0 + 1 + j)
    inside[max(y0 - Y0 - 1, 0):y1 - Y0 - 1, max(x0 - X0 - 1, 0):x1 - X0 - 1] = True
    if not inside.any() or inside.all():
        return 1.0
    ring = float(d[~inside].mean())
    return 1.0 if ring <= 0.5 else float(d[inside].mean() / ring)
