"""The user's ratings of a report's images: `ratings.csv` (what the report page exports and
the ComfyUI route saves, what `calibrate` and `learn` read) and matching them to report rows.

One row per image: `file,rating,sha256,flag` — the file name as the report lists it, a number
(the page's scale is 1–5; any numeric scale is read), the sha256 of the image's content (so a
renamed file still matches; may be empty), and `reject` / `favourite` (may be empty). A mark
without a number is exported as `REJECT_RATING` / `FAVOURITE_RATING`. A header row and lines
starting with `#` are skipped; `calibrate`'s older `file,rating` files read the same way.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TypeVar

HEADER = ("file", "rating", "sha256", "flag")
FLAGS = ("reject", "favourite")
REJECT_RATING = 1.0
FAVOURITE_RATING = 5.0
SCALE = (1.0, 5.0)
"""The page's rating scale (keys 1–5)."""
REPORT = "# report: "
"""A comment line naming the report folder the ratings are for (so `learn` finds it)."""
MAX_NAME = 1024
MAX_ROWS = 100_000
MAX_RATING = 1e6
_SHA = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rating:
    """One rated image: its report name, the number, its content hash ("" unknown), a flag."""

    file: str
    rating: float
    sha256: str = ""
    flag: str = ""


def check(r: Rating, where: str = "") -> Rating:
    """`r` when every field is in range (a name without control characters, a finite number,
    a 64-hex-digit hash or "", a known flag or ""); else ValueError saying which field."""
    at = f"{where}: " if where else ""
    if not (isinstance(r.file, str) and r.file.strip() and len(r.file) <= MAX_NAME
            and not _CONTROL.search(r.file)):
        raise ValueError(f"{at}file must be a name of 1–{MAX_NAME} printable characters")
    if (isinstance(r.rating, bool) or not isinstance(r.rating, int | float)
            or not math.isfinite(r.rating) or abs(r.rating) > MAX_RATING):
        raise ValueError(f"{at}rating must be a finite number")
    if not (isinstance(r.sha256, str) and (r.sha256 == "" or _SHA.match(r.sha256))):
        raise ValueError(f"{at}sha256 must be 64 lowercase hex digits or empty")
    if r.flag not in ("", *FLAGS):
        raise ValueError(f"{at}flag must be one of {', '.join(FLAGS)} or empty")
    return r


def parse(text: str, name: str = "ratings") -> list[Rating]:
    """The ratings in CSV text; ValueError names the line. Columns are `file,rating`, then
    `sha256` and `flag` where a header row names them (other columns are ignored)."""
    out: list[Rating] = []
    cols: dict[str, int] = {}
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{name}:{n}"
        if len(row) < 2:
            raise ValueError(f"{where}: expected 'file,rating' (then sha256,flag if named)")
        cells = [c.strip() for c in row]
        try:
            rating = float(cells[1])
        except ValueError:
            if not out and not cols:  # a header row
                cols = {c.lower(): i for i, c in enumerate(cells)}
                continue
            raise ValueError(f"{where}: rating {cells[1][:40]!r} is not a number") from None
        extra = [cells[i].lower() if (i := cols.get(k, -1)) in range(2, len(cells)) else ""
                 for k in HEADER[2:]]
        out.append(check(Rating(cells[0], rating, *extra), where))
        if len(out) > MAX_ROWS:
            raise ValueError(f"{name}: more than {MAX_ROWS} ratings")
    return out


def read(path: str | Path) -> list[Rating]:
    """`parse` of a file (UTF-8, a BOM allowed); at most MAX_ROWS rows."""
    path = Path(path)
    if path.stat().st_size > MAX_ROWS * (MAX_NAME + 100):
        raise ValueError(f"{path.name}: too large for a ratings file")
    return parse(path.read_text(encoding="utf-8-sig"), path.name)


def to_csv(ratings: Iterable[Rating], report: str = "") -> str:
    """The CSV text (header first, then the `report` comment when given) `parse` reads back."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    if report:
        buf.write(REPORT + _CONTROL.sub(" ", report) + "\n")
    for r in ratings:
        w.writerow([r.file, f"{r.rating:g}", r.sha256, r.flag])
    return buf.getvalue()


def report_of(path: str | Path) -> Path | None:
    """The report folder a ratings file names in its `# report:` line, if any."""
    with Path(path).open(encoding="utf-8-sig") as f:
        for _, line in zip(range(5), f, strict=False):
            if line.startswith(REPORT) and line[len(REPORT):].strip():
                return Path(line[len(REPORT):].strip())
    return None


def scale_of(ratings: Sequence[Rating]) -> tuple[float, float]:
    """The page's 1–5 when every rating lies in it, else the ratings' own min–max."""
    values = [r.rating for r in ratings]
    if values and SCALE[0] <= min(values) and max(values) <= SCALE[1]:
        return SCALE
    return (min(values, default=0.0), max(values, default=0.0))


T = TypeVar("T")


def match(rows: Sequence[tuple[str, str, T]], ratings: Sequence[Rating]
          ) -> list[tuple[Rating, T]]:
    """Each rating with the report row it rates: rows are (file name, sha256 or "", item).
    By content hash first (among rows of the same content: the one of the same name, else
    one not rated yet), then the exact name, then the base name, then the stem (a rating
    named without extension); a row is rated once (the last rating for it wins)."""
    by_hash: dict[str, list[int]] = {}
    by_name: dict[str, int] = {}
    for i, (name, sha, _) in enumerate(rows):
        if sha:
            by_hash.setdefault(sha, []).append(i)
        p = PurePath(name.replace("\\", "/"))
        for key in (name, p.name, p.stem):
            by_name.setdefault(key, i)
    chosen: dict[int, Rating] = {}
    for r in ratings:
        same = by_hash.get(r.sha256, []) if r.sha256 else []
        i = next((j for j in same if rows[j][0] == r.file),
                 next((j for j in same if j not in chosen), same[0] if same else None))
        if i is None:
            p = PurePath(r.file.replace("\\", "/"))
            i = next((by_name[k] for k in (r.file, p.name) if k in by_name), None)
        if i is not None:
            chosen.pop(i, None)
            chosen[i] = r
    return [(r, rows[i][2]) for i, r in chosen.items()]
