"""The technical check: catches broken generations with numpy alone, before a model is spent.

A `check` source: it never votes on an axis; its findings are a penalty on `overall` with a
human reason each, and its measurements go into `card.extras`. Findings, in order:

- non-finite pixels (NaN/inf, a broken VAE decode) → the frame is broken, nothing else is checked;
- a tiny image (shorter side < `MIN_SIDE` px);
- a flat frame (grey-level std < `FLAT_STD`): black, white or uniform;
- a partially decoded frame: the bottom rows (at least `BAND_FRAC` of the height) are one
  exact colour that the rest of the frame has no region of (it fills under `BAND_ELSEWHERE`
  of the 8 px blocks above). A PNG cut short loads (as ComfyUI's LoadImage loads it) with a
  black bottom, a cut baseline JPEG with a grey one; scikit-image's photos keep under 7% of
  their blocks in pure black, while a flat illustration background at the bottom is also
  around the figure (20–60% of the blocks in our tests), so it does not count;
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

from ..core.cards import CHECK, ScoreCard, Sheet
from ..core.images import Image
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
BAND_PENALTY = 80.0
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


def _bottom_band(rgb: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(fraction of the height, colour) of a partially decoded frame's constant bottom band
    that the rest of the frame does not have, else None."""
    h = rgb.shape[0]
    colour = rgb[-1].mean(axis=0)
    flat = (np.ptp(rgb, axis=1).max(axis=1) <= BAND_EPS) & \
        (np.abs(rgb.mean(axis=1) - colour).max(axis=1) <= BAND_EPS)
    run = h if flat.all() else int(np.argmin(flat[::-1]))
    if run < max(2, BAND_FRAC * h) or run == h:
        return None
    rest = rgb[: h - run - max(2, math.ceil(0.02 * h))]  # the cut row may be half decoded
    b = BAND_BLOCK
    hb, wb = rest.shape[0] // b * b, rest.shape[1] // b * b
    if hb == 0 or wb == 0:
        return None
    same = np.abs(rest[:hb, :wb] - colour).max(axis=2) <= BAND_EPS
    elsewhere = float(same.reshape(hb // b, b, wb // b, b).all(axis=(1, 3)).mean())
    return (run / h, colour) if elsewhere < BAND_ELSEWHERE else None


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
    finite = np.isfinite(img)
    if not finite.all():
        frac = 1.0 - float(finite.all(axis=2).mean())
        m["nonfinite_frac"] = round(frac, 4)
        return NONFINITE_PENALTY, [
            f"NaN/inf pixels (broken VAE decode): {frac:.1%} of pixels"], m

    found: list[tuple[float, str]] = []
    if min(h, w) < MIN_SIDE:
        found.append((TINY_PENALTY, f"tiny image ({w}×{h} px)"))
    f = max(1, math.ceil(max(h, w) / WORK_SIDE))
    gray = np.clip(img @ _LUMA, 0.0, 1.0)
    sample = gray[::f, ::f]  # statistics on a strided sample: same answer, a fraction of the work
    std, mean = float(sample.std()), float(sample.mean())
    m |= {"std": round(std, 4), "mean": round(mean, 4)}
    if std < FLAT_STD:
        what = ("black frame" if mean < 0.05 else "white frame" if mean > 0.95
                else f"flat uniform frame (grey {mean:.2f})")
        found.append((FLAT_PENALTY, f"{what}: no content (std {std:.3f})"))
        return _total(found, m)

    rgb = np.clip(img[::f, ::f], 0.0, 1.0)
    noise = _noise(sample, rgb)
    if noise is not None:
        m |= noise
        found.append((NOISE_PENALTY, "pure noise, no structure (a wrong VAE or too few "
                      f"steps?): local contrast ≥ {noise['local_std_p10']:.2f} everywhere"))
        return _total(found, m)
    band = _bottom_band(rgb)
    if band is not None:
        frac, colour = band
        m["band_frac"] = round(frac, 4)
        rgb255 = ", ".join(str(round(float(x) * 255)) for x in colour)
        found.append((BAND_PENALTY, f"partially decoded: the bottom {frac:.0%} is one flat "
                      f"colour (RGB {rgb255}) that no region above it has"))

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
        return self.card(penalty=penalty, reasons=reasons, extras=measured)
