"""Hostile files for the tests: small files that claim a lot (300 frames, 13000² px, a
decompression bomb), files cut short with every kind of fill, and text that breaks pages.

Each builder writes a real file with PIL or (for the huge ones) streams a valid PNG row by
row, so building one never takes the memory decoding it would.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def big_png(path: Path, width: int, height: int, *, colour: tuple[int, int, int] = (120, 90, 200),
            bits: int = 8) -> Path:
    """A valid PNG of width×height px (RGB at `bits`=8; a 1-bit greyscale with `bits`=1),
    written a row at a time: a 13000² RGB file is about 500 KB and costs no memory here."""
    if bits == 1:
        ihdr, row = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0), \
            b"\0" + b"\x55" * ((width + 7) // 8)
    else:
        ihdr, row = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0), \
            b"\0" + bytes(colour) * width
    z = zlib.compressobj(9)
    with path.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr))
        parts = []
        for _ in range(height):
            parts.append(z.compress(row))
            if sum(map(len, parts)) > 1 << 20:
                f.write(_chunk(b"IDAT", b"".join(parts)))
                parts = []
        parts.append(z.flush())
        f.write(_chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return path


def many_frames_gif(path: Path, frames: int = 300, side: int = 1024) -> Path:
    """An animated GIF of `frames` frames of side² px whose file is small (flat shapes that
    move): decoded whole as float32 it would take frames × side² × 12 bytes."""
    palette = [v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)]
    out = []
    for k in range(frames):
        f = Image.new("P", (side, side), 0)
        f.putpalette(palette)
        draw = ImageDraw.Draw(f)
        for j in range(6):
            x, y = (k * 13 + j * 160) % (side - 124), (k * 7 + j * 150) % (side - 94)
            draw.rectangle((x, y, x + 120, y + 90), fill=(k + j * 40) % 255 + 1)
        out.append(f)
    out[0].save(path, save_all=True, append_images=out[1:], duration=40, disposal=1)
    return path


def photo(name: str = "astronaut") -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


CUTS = {
    # name: (PIL mode, format, save options) — how the missing part comes out filled
    "grey (baseline JPEG)": ("RGB", "JPEG", {"quality": 92}),
    "black (PNG)": ("RGB", "PNG", {}),
    "a colour of the picture (palette PNG)": ("P", "PNG", {}),
    "alternate rows (interlaced GIF)": ("P", "GIF", {}),
}
"""Files cut short, by how their missing part is filled when decoded anyway."""


def cut(path: Path, picture: np.ndarray, kind: str, keep: float) -> Path:
    """`picture` saved as CUTS[kind], the file cut to `keep` of its bytes."""
    mode, fmt, kw = CUTS[kind]
    img = Image.fromarray(picture)
    data = encoded(img.convert(mode) if mode != img.mode else img, fmt, **kw)
    path.write_bytes(data[: max(64, int(len(data) * keep))])
    return path


HOSTILE_TEXT = (
    "<!--<script>",
    "</script><script>document.title='pwned'</script>",
    "<img src=x onerror=\"window.__pwned=1\">",
    "a&amp;b &lt;b&gt; & <b>bold",
    "line\u2028sep\u2029para",
    "quote\"'`${x}`\\",
    "]]></style></title><!--",
    "{{constructor.constructor('window.__pwned=1')()}}",
    "\u202eevil.png",
    "日本語の名前 <桜>",
)
"""Names, prompts and comments that break a page that embeds them carelessly."""


def hostile_names() -> list[str]:
    """File names made of HOSTILE_TEXT (no `/`, no NUL: what a file system allows)."""
    return [f"{i:02}-{t.replace('/', '∕')}.png" for i, t in enumerate(HOSTILE_TEXT)]
