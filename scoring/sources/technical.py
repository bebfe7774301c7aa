"""The technical check: catches broken generations with numpy alone, before a model is spent.

A `check` source: it never votes on an axis; its findings are a penalty on `overall` with a
human reason each, and its measurements go into `card.extras`. Findings, in order:

- non-finite pixels (NaN/inf, a broken VAE decode) → the frame is broken, nothing else is checked;
- a tiny image (shorter side < `MIN_SIDE` px);
- a flat frame (grey-level std < `FLAT_STD`): black, white or uniform;
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

from ..cards import ScoreCard, Sheet
from ..images import Image
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

    ratio = _blur_ratio(_downscale(gray, f))
    if ratio is not None:
        m["blur_ratio"] = round(ratio, 5)
        if ratio < BLUR_RATIO:
            severe = ratio < BLUR_RATIO_SEVERE
            limit = BLUR_RATIO_SEVERE if severe else BLUR_RATIO
            found.append((BLUR_PENALTY[severe], f"{'very ' if severe else ''}blurry "
                          f"(Laplacian/variance ratio {ratio:.4f} < {limit})"))

    rgb = np.clip(img[::f, ::f], 0.0, 1.0)
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
    kind: ClassVar[str] = "check"
    provides: ClassVar[tuple[str, ...]] = ("overall",)

    def describe(self) -> str:
        return f"{self.label}: numpy technical check (CPU)"

    def _score(self, images: list[Image], ctx: ScoreContext) -> Sheet:
        return self.each(images, ctx, self._one)

    def _one(self, _: int, image: Image) -> ScoreCard:
        penalty, reasons, measured = inspect(image)
        return self.card(penalty=penalty, reasons=reasons, extras=measured)
