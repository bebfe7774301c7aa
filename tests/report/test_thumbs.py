"""A report's thumbnails (`scoring.report.thumbs`): small JPEGs in the report's one thumbs/
folder, named by their content, written once and atomically, and read back only through a
reference of ours — a row's text never makes the report read another file."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys

import skimage.data
from helpers import REPO
from PIL import Image as PILImage

from scoring.core.images import as_rgb
from scoring.report.thumbs import FOLDER, load, store, thumbnail


def jpegs() -> tuple[bytes, bytes]:
    return (thumbnail(as_rgb(skimage.data.astronaut())),
            thumbnail(as_rgb(skimage.data.coffee()), size=64))


def test_a_thumbnail_is_a_small_jpeg():
    big, small = jpegs()
    for data, side in ((big, 192), (small, 64)):
        with PILImage.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG" and max(img.size) == side


def test_store_names_each_content_once_and_leaves_no_temp_file(tmp_path):
    a, b = jpegs()
    ref = store(tmp_path, a)
    assert re.fullmatch(rf"{FOLDER}/[0-9a-f]{{20}}\.jpg", ref)
    assert (tmp_path / ref).read_bytes() == a
    assert store(tmp_path, a) == ref  # the same picture: the same file, for every run
    other = store(tmp_path, b)
    assert other != ref and (tmp_path / other).read_bytes() == b
    (tmp_path / ref).write_bytes(b"as it was")
    assert store(tmp_path, a) == ref and (tmp_path / ref).read_bytes() == b"as it was"
    assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == sorted(
        r.split("/")[1] for r in (ref, other))  # written once each, nothing else left


def test_a_write_that_fails_leaves_neither_the_file_nor_a_temp(tmp_path):
    """A real failing write: the file size limit (RLIMIT_FSIZE) in a fresh Python stops the
    thumbnail half-way, as a full disk would."""
    script = """
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
from scoring.report import thumbs
try:
    thumbs.store(sys.argv[1], bytes(range(256)) * 40)
    print(json.dumps(None))
except OSError as e:
    print(json.dumps(e.errno))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == errno.EFBIG
    assert list((tmp_path / FOLDER).iterdir()) == []


def test_load_reads_only_references_of_ours(tmp_path):
    a, _ = jpegs()
    out = tmp_path / "report"
    ref = store(out, a)
    assert load(out, ref) == a
    (tmp_path / "x.jpg").write_bytes(a)  # beside the report folder: exists, never read
    name = ref.split("/")[1]
    for other in ("../x.jpg", str(tmp_path / "x.jpg"), f"{FOLDER}/../../x.jpg",
                  f"/{ref}", f"{FOLDER}/x.jpg", f"{FOLDER}/{name.upper()}",
                  ref.replace(".jpg", ".png"), f"{FOLDER}\\{name}", f"{ref}\n", "report.jsonl",
                  "", None, 7, [ref]):
        assert load(out, other) is None, other
    assert load(out, f"{FOLDER}/{'0' * 20}.jpg") is None  # ours, but no such file
