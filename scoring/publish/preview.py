"""The regions of a publish verdict drawn on the image: green obscured, red needs a mosaic,
orange mosaic too fine; each labelled with its name and what was found."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .rules import OK, TOO_FINE

COLOURS = {OK: (40, 200, 80), TOO_FINE: (255, 150, 0)}
NEEDS = (230, 30, 30)


def label(region: dict[str, Any]) -> str:
    """"R1 ok 12px" / "R2 3px<11" / "R3 none" — short enough for a small region."""
    c, name, status = region["cover"], region["name"], region["status"]
    if status == OK:
        return f"{name} ok {c['block']}px" if c["kind"] == "mosaic" else f"{name} ok bar"
    if status == TOO_FINE:
        return f"{name} {c['block']}px<{region['needed']}"
    return f"{name} {c['kind'] if c['kind'] != 'nothing' else 'none'}"


def draw(image: np.ndarray, verdict: dict[str, Any]) -> np.ndarray:
    """A uint8 HxWx3 copy of `image` (uint8) with the regions of a verdict (as
    `PublishVerdict.to_dict` writes it, what cards carry) drawn on it."""
    pil = PILImage.fromarray(np.asarray(image, np.uint8), "RGB")
    d = ImageDraw.Draw(pil)
    h, w = image.shape[:2]
    width = max(2, round(max(h, w) / 300))
    size = max(12, round(max(h, w) / 40))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    for region in verdict.get("regions", []):
        x0, y0, x1, y1 = (int(v) for v in region["box"])
        colour = COLOURS.get(region["status"], NEEDS)
        d.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
        text = label(region)
        tx, ty = x0, max(0, y0 - size - 2 * width)
        box = d.textbbox((tx, ty), text, font=font)
        d.rectangle(box, fill=colour)
        d.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)
