"""A report's thumbnails: small JPEGs in the report's one `thumbs/` folder, each file named
by its content (written once, shared by every run that writes the same report), referred to
from report.jsonl and the page as `thumbs/<name>.jpg`."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from ..core.atomic import as_write_error, write_bytes
from ..core.images import Image, to_pil

FOLDER = "thumbs"
_REF = re.compile(rf"^{FOLDER}/[0-9a-f]{{20}}\.jpg$")


def thumbnail(image: Image, size: int = 192, quality: int = 80) -> bytes:
    """A small JPEG of the image (long side `size` px) for the report."""
    pil = to_pil(image)
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def store(out_dir: str | Path, jpeg: bytes) -> str:
    """`jpeg` in `out_dir/thumbs/` (written atomically, once per content); its reference."""
    ref = f"{FOLDER}/{hashlib.sha1(jpeg).hexdigest()[:20]}.jpg"
    path = Path(out_dir) / ref
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise as_write_error(e, path) from e
        write_bytes(path, jpeg)
    return ref


def load(out_dir: str | Path, ref: object) -> bytes | None:
    """The thumbnail a report row refers to, or None (no such file, or not a reference of
    ours: a row's text never names another file)."""
    if not isinstance(ref, str) or not _REF.match(ref):
        return None
    try:
        return (Path(out_dir) / ref).read_bytes()
    except OSError:
        return None
