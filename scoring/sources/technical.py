"""The technical check: catches broken generations with numpy alone, before a model is spent.

A `check` source: it never votes on an axis; its findings are a penalty on `overall` with a
human reason each, and its measurements go into `card.extras`. Findings, in order:

- non-finite pixels (NaN/inf, a broken VAE decode) → the frame is broken, nothing else is checked;
- a tiny image (shorter side < `MIN_SIDE` px);
- a flat frame (grey-level std < `FLAT_STD`): black, white or uniform;
- a partially decoded frame (a file cut short, decoded as far as its data goes, as
  ComfyUI's LoadImage does), whatever the fill: the bottom rows (at least `BAND_EDGE_FRAC`
  of the height) are one exact colour and either meet the picture along a straight cut
  (`_cut_edge`: the row above is picture — up to where a baseline JPEG's last MCU strip
  stops mid-row — and the band colour is under `BAND_NEAR` of the rows above) or, for a
  band of at least `BAND_FRAC`, the colour fills under `BAND_ELSEWHERE` of the 8 px blocks
  above; or rows of one exact colour alternate with picture rows (an interlaced GIF cut
  short). A figure on a plain page, a background beside it, a letterbox and a frame are
  not cuts. Checked before anything else but NaN: such a frame is broken (`PARTIAL`);
- pure noise (a wrong VAE, a 1-step sample): local contrast high and flat everywhere (the
  grey std of every 16 px block at least `NOISE_LOCAL_STD`, the 90th percentile under
  `NOISE_FLATNESS` × the 10th) and no structure: neighbouring pixels uncorrelated
  (< `NOISE_NEIGHBOUR`), or colour noise — the channels uncorrelated (< `NOISE_CHROMA`) with
  no large-scale light (std of 64 px block means under `NOISE_COARSE` of the pixel std).
  Real photos measure neighbour correlation 0.72–0.99 and channel correlation ≥ 0.76;
  greyscale textures (scikit-image's grass, gravel, brick) pass as the structure they are;
- blur: variance of a 4-neighbour Laplacian of the grey image (block-mean downscaled to a long
  side of at most `WORK_SIDE` px) divided by the grey variance, so contrast does not count as
  sharpness. scikit-image's sharp photos measure 0.03–1.7; after a Gaussian blur of σ=3 they
  measure 0.0003–0.006 (σ=2: 0.001–0.02). Below `BLUR_RATIO` is blurry, below
  `BLUR_RATIO_SEVERE` very blurry;
- over-/under-exposure: more than `CLIP_FRAC` of the pixels pure white (every channel ≥ 0.995)
  *and* the shadows gone (5th percentile grey > `SHADOW_GONE`); mirrored for black (95th
  percentile < `LIGHT_GONE`). A plain white background beside normally exposed content is
  legitimate in illustrations and does not count: its darker parts keep the 5th percentile low.
  Photos brightened ×3 or +0.5 then clipped measure 0.55–0.94; the untouched photos ≤ 0.38;
- low contrast: the 1st–99th percentile range of grey levels below `CONTRAST_RANGE`.

Each finding adds its points (total capped at 100) and one reason.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..core.cards import BROKEN, CHECK, ScoreCard, Sheet
from ..core.images import MAX_PIXELS, Image
from .base import ScoreContext, Source

NONFINITE_PENALTY = 100.0
MIN_SIDE = 16
TINY_PENALTY = 60.0
FLAT_STD = 0.01
FLAT_PENALTY = 90.0
WORK_SIDE = 512
BLUR_RATIO = 0.01
BLUR_RATIO_SEVERE = 0.003
BLUR_PENALTY = (15.0, 35.0)
CLIP_FRAC = 0.15
SHADOW_GONE = 0.55
LIGHT_GONE = 0.15
CLIP_PENALTY = 25.0
CONTRAST_RANGE = 0.25
CONTRAST_PENALTY = 20.0
BAND_FRAC = 0.05
BAND_EPS = 1.5 / 255
BAND_ELSEWHERE = 0.10
BAND_BLOCK = 8
BAND_EDGE = 0.7
BAND_EDGE_FRAC = 0.01
BAND_NEAR = 0.4
BAND_ZONE = 64
BAND_STRIP = 16
BAND_MOST = 0.5
BAND_PICTURE = 6
INTERLACE_RUNS = 12
BAND_PENALTY = 80.0
PARTIAL = "partially decoded"
"""How a partial-decode finding starts: the card marks the frame `BROKEN` (unscored)."""
NOISE_BLOCK = 16
NOISE_LOCAL_STD = 0.04
NOISE_FLATNESS = 2.5
NOISE_NEIGHBOUR = 0.5
NOISE_CHROMA = 0.5
NOISE_COARSE = 0.25
NOISE_PENALTY = 80.0

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _downscale(gray: np.ndarray, f: int) -> np.ndarray:
    """Block-mean downscale by `f` (crops the last few rows/columns)."""
    h, w = gray.shape[0] // f * f, gray.shape[1] // f * f
    if f == 1 or h == 0 or w == 0:
        return gray
    return gray[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _blur_ratio(gray: np.ndarray) -> float | None:
    """Laplacian variance over grey variance (None for images under 3 px or flat ones)."""
    g = gray
    if min(g.shape) < 3:
        return None
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    var = float(g.var())
    return float(lap.var()) / var if var > 1e-8 else None


def _is(rows: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Which pixels of `rows` (…x3) are exactly `colour` (within BAND_EPS)."""
    return np.abs(rows - colour).max(axis=-1) <= BAND_EPS


def _ends(row: np.ndarray) -> tuple[int, int]:
    """How many pixels at the left and at the right end of a boolean row are True."""
    if row.all():
        return row.size, row.size
    return int(np.argmin(row)), int(np.argmin(row[::-1]))


def _cut_edge(rgb: np.ndarray, top: int, colour: np.ndarray) -> bool | None:
    """How the band starting at row `top` meets the picture: True along a straight cut —
    the row above is picture, up to where the band colour runs to its right edge (a
    baseline JPEG stops mid-row: the rows of its last MCU strip end alike), and above
    that strip the band colour covers under BAND_NEAR of the pixels; None when the band
    colour runs straight up a side of the picture (a plain background beside a figure:
    no cut); else False."""
    above = _is(rgb[top - 1], colour)
    lead, tail = (n if n >= BAND_BLOCK else 0 for n in _ends(above))  # not chance pixels
    if lead + tail >= above.size:
        return False
    strip, same = top - 1, 0
    while (lead or tail) and strip > 0:
        row = _ends(_is(rgb[strip - 1], colour))
        if max(abs(row[0] - lead), abs(row[1] - tail)) > BAND_BLOCK:
            break
        strip -= 1
        same += row == (lead, tail)
        if same > 2 * BAND_STRIP:  # no MCU strip is this tall: a side background
            return None
    strip = max(strip, top - 1 - 2 * BAND_STRIP)
    head = above[lead: above.size - tail]
    if head.mean() > 1 - BAND_EDGE:
        return False
    zone = rgb[max(0, strip - BAND_ZONE): strip]
    return zone.size == 0 or float(_is(zone, colour).mean()) <= BAND_NEAR


def _interlaced(rgb: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(fraction, colour) of an interlaced file cut short: rows of one exact colour (the
    commonest colour of the frame's flat rows), one to seven at a time (what the missing
    passes leave), alternating with picture rows in at least INTERLACE_RUNS places."""
    probe = rgb[:, :: max(1, rgb.shape[1] // 32)]  # 32 columns first: cheap, and enough
    if np.count_nonzero(np.ptp(probe, axis=1).max(axis=1) <= BAND_EPS) < INTERLACE_RUNS:
        return None
    level = np.ptp(rgb, axis=1).max(axis=1) <= BAND_EPS
    if np.count_nonzero(level) < INTERLACE_RUNS:
        return None
    values, counts = np.unique(np.round(rgb[level, 0] * 255), axis=0, return_counts=True)
    colour = values[int(np.argmax(counts))] / 255
    flat = level & _is(rgb[:, 0], colour)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flat.astype(np.int8), [0]))))
    lengths = edges[1::2] - edges[::2]  # the runs of flat rows
    short = int(np.count_nonzero(lengths <= 7))
    return (float(flat.mean()), colour) if short >= INTERLACE_RUNS else None


def _bottom_band(rgb: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(fraction of the height, colour) of a partially decoded frame's constant bottom band,
    else None. The band is partial decoding when the colour is rare in the rest of the frame
    (under BAND_ELSEWHERE of its 8 px blocks), or when it meets the picture along a straight
    cut (`_cut_edge`) — so a fill colour the picture also has is caught — and the top of the
    frame is no band of that colour (a letterbox has bars at both ends), nor, for a band of
    under BAND_MOST, are the rows above it flat shapes of under BAND_PICTURE colours (a
    flat graphic)."""
    h = rgb.shape[0]
    colour = rgb[-1].mean(axis=0)
    flat = (np.ptp(rgb, axis=1).max(axis=1) <= BAND_EPS) & \
        (np.abs(rgb.mean(axis=1) - colour).max(axis=1) <= BAND_EPS)
    run = h if flat.all() else int(np.argmin(flat[::-1]))
    if run < max(2, BAND_EDGE_FRAC * h) or run == h:
        return None
    top = h - run
    if flat[:run].all():  # the same bar on top: a letterbox or a frame
        return None
    above = rgb[max(0, top - BAND_STRIP): top].reshape(-1, 3)
    if run < BAND_MOST * h and len(np.unique(np.round(above * 255), axis=0)) < BAND_PICTURE:
        return None  # flat shapes on a flat ground: a graphic, not a picture cut off
    edge = _cut_edge(rgb, top, colour)
    if edge:
        return run / h, colour
    if edge is None or run < BAND_FRAC * h:
        return None
    rest = rgb[: top - max(2, math.ceil(0.02 * h))]  # the cut row may be half decoded
    b = BAND_BLOCK
    hb, wb = rest.shape[0] // b * b, rest.shape[1] // b * b
    if hb == 0 or wb == 0:  # a sliver of picture above the band: nothing to compare
        return (run / h, colour) if run >= BAND_MOST * h else None
    same = _is(rest[:hb, :wb], colour)
    elsewhere = float(same.reshape(hb // b, b, wb // b, b).all(axis=(1, 3)).mean())
    return (run / h, colour) if elsewhere < BAND_ELSEWHERE else None


def _partial(rgb: np.ndarray, rows: np.ndarray) -> tuple[float, str] | None:
    """(fraction, reason) of a partially decoded frame: a bottom band (`_bottom_band`, on
    the sample `rgb`) or interlaced rows (`_interlaced`, on every row of `rows`)."""
    band = _bottom_band(rgb)
    lines = None if band else _interlaced(rows)
    if not (band or lines):
        return None
    frac, colour = band or lines  # type: ignore[misc]
    rgb255 = ", ".join(str(round(float(x) * 255)) for x in colour)
    what = (f"the bottom {frac:.0%} is one flat colour (RGB {rgb255}) cut straight across "
            "the picture" if band else f"{frac:.0%} of the rows, alternating with picture "
            f"rows, are one flat colour (RGB {rgb255}): an interlaced file cut short")
    return frac, f"{PARTIAL}: {what}"


def _noise(gray: np.ndarray, rgb: np.ndarray) -> dict[str, float] | None:
    """Measurements of a frame that is noise with no structure, else None."""
    b = NOISE_BLOCK
    h, w = gray.shape[0] // b * b, gray.shape[1] // b * b
    if h < 4 * b or w < 4 * b:
        return None
    local = gray[:h, :w].reshape(h // b, b, w // b, b).std(axis=(1, 3))
    p10, p90 = (float(v) for v in np.percentile(local, [10, 90]))
    if p10 < NOISE_LOCAL_STD or p90 > NOISE_FLATNESS * p10:
        return None

    def corr(a: np.ndarray, c: np.ndarray) -> float:
        a, c = a.ravel() - a.mean(), c.ravel() - c.mean()
        d = float(np.sqrt((a * a).sum() * (c * c).sum()))
        return float((a * c).sum()) / d if d > 0 else 1.0

    neighbour = (corr(gray[:, :-1], gray[:, 1:]) + corr(gray[:-1], gray[1:])) / 2
    m = {"local_std_p10": round(p10, 4), "neighbour_corr": round(neighbour, 3)}
    if neighbour < NOISE_NEIGHBOUR:
        return m
    chroma = (corr(rgb[..., 0], rgb[..., 1]) + corr(rgb[..., 1], rgb[..., 2])) / 2
    c = 4 * b
    hc, wc = gray.shape[0] // c * c, gray.shape[1] // c * c
    coarse = float(gray[:hc, :wc].reshape(hc // c, c, wc // c, c).mean(axis=(1, 3)).std())
    coarse /= max(float(gray.std()), 1e-6)
    m |= {"channel_corr": round(chroma, 3), "coarse_ratio": round(coarse, 3)}
    return m if chroma < NOISE_CHROMA and coarse < NOISE_COARSE else None


def inspect(image: Image) -> tuple[float, list[str], dict[str, float]]:
    """(penalty points, reasons, measurements) for one float HxWx3 image."""
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape[:2]
    m: dict[str, float] = {"width": float(w), "height": float(h)}
    frac = _nonfinite(img)
    if frac:
        m["nonfinite_frac"] = round(frac, 4)
        return NONFINITE_PENALTY, [
            f"NaN/inf pixels (broken VAE decode): {frac:.1%} of pixels"], m
    if h * w > MAX_PIXELS:  # a huge tensor (LoadImage of a huge file): look at a sample
        s = math.ceil(math.sqrt(h * w / MAX_PIXELS))
        img = img[::s, ::s]
        h, w = img.shape[:2]

    found: list[tuple[float, str]] = []
    if min(h, w) < MIN_SIDE:
        found.append((TINY_PENALTY, f"tiny image ({w}×{h} px)"))
    f = max(1, math.ceil(max(h, w) / WORK_SIDE))
    gray = np.clip(img @ _LUMA, 0.0, 1.0)
    sample = gray[::f, ::f]  # statistics on a strided sample: same answer, a fraction of the work
    std, mean = float(sample.std()), float(sample.mean())
    m |= {"std": round(std, 4), "mean": round(mean, 4)}
    rgb = np.clip(img[::f, ::f], 0.0, 1.0)
    partial = _partial(rgb, img[:, ::f])
    if partial is not None:  # broken: nothing else about it matters
        m["band_frac"] = round(partial[0], 4)
        found.append((BAND_PENALTY, partial[1]))
        return _total(found, m)
    if std < FLAT_STD:
        what = ("black frame" if mean < 0.05 else "white frame" if mean > 0.95
                else f"flat uniform frame (grey {mean:.2f})")
        found.append((FLAT_PENALTY, f"{what}: no content (std {std:.3f})"))
        return _total(found, m)

    noise = _noise(sample, rgb)
    if noise is not None:
        m |= noise
        found.append((NOISE_PENALTY, "pure noise, no structure (a wrong VAE or too few "
                      f"steps?): local contrast ≥ {noise['local_std_p10']:.2f} everywhere"))
        return _total(found, m)

    ratio = _blur_ratio(_downscale(gray, f))
    if ratio is not None:
        m["blur_ratio"] = round(ratio, 5)
        if ratio < BLUR_RATIO:
            severe = ratio < BLUR_RATIO_SEVERE
            limit = BLUR_RATIO_SEVERE if severe else BLUR_RATIO
            found.append((BLUR_PENALTY[severe], f"{'very ' if severe else ''}blurry "
                          f"(Laplacian/variance ratio {ratio:.4f} < {limit})"))

    white, black = rgb.min(axis=2) >= 0.995, rgb.max(axis=2) <= 0.005
    hi, lo = float(white.mean()), float(black.mean())
    m |= {"clipped_white": round(hi, 4), "clipped_black": round(lo, 4)}
    p1, p5, p95, p99 = (float(v) for v in np.percentile(sample, [1, 5, 95, 99]))
    if hi > CLIP_FRAC and p5 > SHADOW_GONE:
        found.append((CLIP_PENALTY, f"over-exposed: {hi:.0%} of pixels clipped to white, "
                      f"no shadows (5th percentile grey {p5:.2f})"))
    elif lo > CLIP_FRAC and p95 < LIGHT_GONE:
        found.append((CLIP_PENALTY, f"under-exposed: {lo:.0%} of pixels clipped to black, "
                      f"no highlights (95th percentile grey {p95:.2f})"))
    m["range_1_99"] = round(p99 - p1, 4)
    if p99 - p1 < CONTRAST_RANGE:
        found.append((CONTRAST_PENALTY, f"low contrast (1–99% grey range {p99 - p1:.2f})"))
    return _total(found, m)


def _nonfinite(img: np.ndarray) -> float:
    """The fraction of pixels with a NaN or inf channel, looked at a band of rows at a time
    (never a full-size mask of a huge frame)."""
    step = max(1, (1 << 22) // max(1, img.shape[1] * img.shape[2]))
    bands = [img[r:r + step] for r in range(0, img.shape[0], step)]
    if all(np.isfinite(b).all() for b in bands):
        return 0.0
    bad = sum(int((~np.isfinite(b)).any(axis=2).sum()) for b in bands)
    return bad / max(1, img.shape[0] * img.shape[1])


def _total(found: list[tuple[float, str]], m: dict[str, float]
           ) -> tuple[float, list[str], dict[str, float]]:
    return min(100.0, sum(p for p, _ in found)), [r for _, r in found], m


class TechnicalCheck(Source):
    """Broken-frame, blur, exposure and contrast check; a penalty on `overall`, no model."""

    name: ClassVar[str] = "technical"
    kind: ClassVar[str] = CHECK
    provides: ClassVar[tuple[str, ...]] = ("overall",)

    def describe(self) -> str:
        return f"{self.label}: numpy technical check (CPU)"

    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        return self.each(images, ctx, self._one)

    def _one(self, _: int, image: Image) -> ScoreCard:
        penalty, reasons, measured = inspect(image)
        broken = next((r for r in reasons if r.startswith(PARTIAL)), None)
        extras: dict[str, object] = {**measured, **({BROKEN: broken} if broken else {})}
        return self.card(penalty=penalty, reasons=reasons, extras=extras)
