"""The regions of a publish verdict drawn on the image: green obscured, red needs a mosaic,
orange mosaic too fine; each labelled with its name and what was found."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .rules import OK, TOO_FINE, PublishVerdict

COLOURS = {OK: (40, 200, 80), TOO_FINE: (255, 150, 0)}
NEEDS = (230, 30, 30)


def label(check) -> str:
    """"R1 ok 12px" / "R2 3px<11" / "R3 none" — short enough for a small region."""
    c = check.cover
    if check.status == OK:
        return f"{check.name} ok {c.block}px" if c.kind == "mosaic" else f"{check.name} ok bar"
    if check.status == TOO_FINE:
        return f"{check.name} {c.block}px<{check.needed}"
    return f"{check.name} {c.kind if c.kind != 'nothing' else 'none'}"


def draw(image: np.ndarray, verdict: PublishVerdict) -> np.ndarray:
    """A uint8 HxWx3 copy of `image` (uint8) with the verdict's regions drawn on it."""
    pil = PILImage.fromarray(np.asarray(image, np.uint8), "RGB")
    d = ImageDraw.Draw(pil)
    h, w = image.shape[:2]
    width = max(2, round(max(h, w) / 300))
    size = max(12, round(max(h, w) / 40))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    for check in verdict.regions:
        x0, y0, x1, y1 = check.region.box
        colour = COLOURS.get(check.status, NEEDS)
        d.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
        text = label(check)
        tx, ty = x0, max(0, y0 - size - 2 * width)
        box = d.textbbox((tx, ty), text, font=font)
        d.rectangle(box, fill=colour)
        d.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)
