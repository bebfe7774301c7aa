"""Images as every source gets them (`scoring.core.images`): any layout normalised to RGB
float, odd shapes refused, PIL modes and files read; and as the CLI reads files (issue G.6):
16-bit and float images keep their values (NaN/inf reach the technical check), EXIF
orientation is honoured, animated files are read frame by frame and truncated files as
ComfyUI's LoadImage reads them — checked against LoadImage's own steps (PIL's
exif_transpose, ImageSequence) and through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
import tifffile
from helpers.run_cli import run
from PIL import Image as PILImage
from PIL import ImageOps

from scoring.core.images import (
    BadImage,
    as_rgb,
    from_pil,
    load,
    load_frames,
    orient,
    to_pil,
    to_uint8,
)


def rgb_photo() -> np.ndarray:
    return skimage.data.astronaut()[::4, ::4]  # 128×128 uint8


def test_sixteen_bit_png_is_scaled_from_its_own_range(tmp_path):
    a = np.full((24, 32), 1000, np.uint16)  # dark: 1000/65535, not 1000/255 (white)
    PILImage.fromarray(a).save(tmp_path / "dark16.png")
    img = load(tmp_path / "dark16.png")
    assert img.shape == (24, 32, 3) and np.allclose(img, 1000 / 65535)


def test_float_tiff_keeps_nan_and_inf(tmp_path):
    a = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)
    a[:10] = np.nan
    a[-1, -1] = np.inf
    PILImage.fromarray(a, "F").save(tmp_path / "nan.tif")
    img = load(tmp_path / "nan.tif")
    assert np.isnan(img[:10]).all() and np.isposinf(img[-1, -1]).all()
    assert np.allclose(img[10:29, :, 0], a[10:29])  # 0–1 floats stay 0–1

    rgb = np.random.default_rng(0).random((16, 20, 3)).astype(np.float32)
    rgb[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "rgb_float.tif", rgb, photometric="rgb")  # PIL cannot
    out = load(tmp_path / "rgb_float.tif")
    assert np.isnan(out[0, 0]).all() and np.allclose(out[1:], rgb[1:])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_loadimage_turns_it(tmp_path, orientation):
    src = PILImage.fromarray(skimage.data.astronaut()[:96, :64])
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    src.save(path, exif=exif, quality=95)
    with PILImage.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
    got = load(path)
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-6)
    assert np.array_equal(orient(np.asarray(src), orientation) / 255,
                          np.asarray(ImageOps.exif_transpose(_tagged(src, orientation))) / 255)


def _tagged(img: PILImage.Image, orientation: int) -> PILImage.Image:
    copy = img.copy()
    copy.getexif()[0x0112] = orientation
    copy.info["exif"] = copy.getexif().tobytes()
    return copy


def test_animated_files_frame_by_frame(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [PILImage.new("RGB", (32, 24), c) for c in colours]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:],
                   duration=100, lossless=True)
    for name in ("anim.gif", "anim.webp"):
        got = load_frames(tmp_path / name)
        assert len(got) == 3
        assert [tuple(np.round(f[5, 5] * 255).astype(int)) for f in got] == colours


def test_truncated_png_reads_as_loadimage_does(tmp_path):
    PILImage.fromarray(rgb_photo()).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    img = load(tmp_path / "half.png")
    assert img.shape == (128, 128, 3) and (img[-10:] == 0).all() and img[:10].std() > 0.05
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png at all")
    with pytest.raises(BadImage, match=r"junk\.png"):
        load(tmp_path / "junk.png")


@pytest.mark.parametrize(("array", "pixel"), [
    (np.full((2, 3), 128, np.uint8), 128 / 255),                     # grayscale
    (np.full((2, 3, 1), 65535, np.uint16), 1.0),                     # 16-bit, one channel
    (np.dstack([np.zeros((2, 3, 3)), np.zeros((2, 3, 1))]), 1.0),    # transparent → white
    (np.full((2, 3, 3), 0.25, np.float64), 0.25),
])
def test_as_rgb_normalises_layouts(array, pixel):
    img = as_rgb(array)
    assert img.shape == (2, 3, 3) and img.dtype == np.float32
    assert img[0, 0, 0] == pytest.approx(pixel, abs=1e-3)


@pytest.mark.parametrize("shape", [(0, 4, 3), (4, 4, 2), (4,), (2, 2, 2, 3)])
def test_as_rgb_rejects_odd_shapes(shape):
    with pytest.raises(BadImage):
        as_rgb(np.zeros(shape))


def test_nan_frames_survive_until_cleaned():
    img = as_rgb(np.full((4, 4, 3), np.nan, np.float32))
    assert np.isnan(img).all()
    assert (to_uint8(img) == 0).all()
    assert to_pil(img).size == (4, 4)


def test_pil_modes_and_files(tmp_path):
    for mode in ("P", "LA", "CMYK", "I;16", "1"):
        img = from_pil(PILImage.new(mode, (5, 4)))
        assert img.shape == (4, 5, 3)
    path = tmp_path / "a.png"
    PILImage.new("RGB", (3, 2), (255, 0, 0)).save(path)
    assert load(path)[0, 0].tolist() == [1.0, 0.0, 0.0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(BadImage, match=r"bad\.png"):
        load(bad)


def test_the_cli_sees_what_loadimage_sees(tmp_path):
    """On the real CLI: the NaN of a float TIFF, a truncated PNG, a rotated JPEG and every
    frame of a GIF reach the technical check."""
    d = tmp_path / "in"
    d.mkdir()
    nan = np.full((64, 64), 0.5, np.float32)
    nan[:16] = np.nan
    PILImage.fromarray(nan, "F").save(d / "nan.tif")
    PILImage.fromarray(skimage.data.chelsea()).save(d / "full.png")
    data = (d / "full.png").read_bytes()
    (d / "cut.png").write_bytes(data[: len(data) // 2])
    (d / "full.png").unlink()
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotated 90°: 120 wide × 80 high on disk, upright 80 × 120
    PILImage.fromarray(skimage.data.coffee()[:80, :120]).save(d / "turned.jpg", exif=exif)
    frames = [PILImage.fromarray(skimage.data.astronaut()[::4, ::4]),
              PILImage.new("RGB", (128, 128))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    out = tmp_path / "out"
    r = run("score", str(d), "--sources", "technical", "--min-sources", "1",
            "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {x["file"]: x for x in map(json.loads, (out / "report.jsonl").read_text()
                                      .splitlines())}
    assert set(rows) == {"nan.tif", "cut.png", "turned.jpg", "anim.gif#0", "anim.gif#1"}

    def check(name: str) -> dict:
        return next(c for c in rows[name]["cards"] if c["source"] == "technical")

    assert check("nan.tif")["penalty"] == 100 and "NaN/inf" in check("nan.tif")["reasons"][0]
    assert check("nan.tif")["extras"]["nonfinite_frac"] == pytest.approx(0.25)
    assert rows["cut.png"]["score"] is None  # cut short: unscored, saying so
    assert rows["cut.png"]["unscored"].startswith("cut.png is cut short: only part of it")
    turned = check("turned.jpg")["extras"]
    assert (turned["width"], turned["height"]) == (80, 120)
    assert rows["anim.gif#0"]["score"] == 100 and "black frame" in \
        check("anim.gif#1")["reasons"][0]
    assert "nan.tif" in r.stdout and "anim.gif#1" in r.stdout
