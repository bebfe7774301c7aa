"""The issue's hostile files through ComfyUI's own LoadImage (issue N.8), in a real
ComfyUI: files cut short with every kind of fill (grey baseline JPEG, black PNG, a colour
of the picture in a palette PNG, alternate rows of an interlaced GIF) come out unscored,
saying they were partially decoded; an animated GIF's frames and a large picture are
scored like any other; NaN/inf tensors from another node never score above nothing."""

from __future__ import annotations

import pytest
from graphs import technical_graph
from helpers.hostile_files import CUTS, big_png, cut, many_frames_gif, photo
from PIL import Image as PILImage


@pytest.mark.parametrize("keep", [0.05, 0.5])
def test_files_cut_short_are_unscored_whatever_the_fill(comfy, keep):
    g, names = {}, []
    for n, kind in enumerate(CUTS):
        name = f"saiten_cut{n}_{int(keep * 100)}.{CUTS[kind][1].lower()}"
        cut(comfy.input_dir / name, photo("chelsea"), kind, keep)
        g.update(technical_graph(name, 10 * (n + 1)))
        names.append((kind, 10 * (n + 1)))
    h = comfy.run(g)
    for kind, node in names:
        shown = h.text(str(node + 2))
        assert shown.startswith("#0 unscored: technical: partially decoded"), (kind, shown)


def test_an_animated_gif_and_a_large_picture_score_like_any_other(comfy):
    many_frames_gif(comfy.input_dir / "saiten_anim.gif", frames=12, side=96)
    big_png(comfy.input_dir / "saiten_big.png", 6000, 5000, colour=(90, 140, 200))
    PILImage.fromarray(photo("coffee")).save(comfy.input_dir / "saiten_fine.png")
    h = comfy.run({**technical_graph("saiten_anim.gif", 10),
                   **technical_graph("saiten_big.png", 20),
                   **technical_graph("saiten_fine.png", 30)})
    frames = [ln for ln in h.text("12").splitlines() if ln.startswith("#")]
    assert len(frames) == 12 and not any("unscored" in ln for ln in frames)
    assert "flat" in h.text("21") and "partially" not in h.text("21")  # one flat colour
    assert h.text("32").startswith("#0 100.0")


@pytest.mark.parametrize("kind", ["nan", "inf", "half-nan"])
def test_nan_and_inf_tensors_score_nothing(comfy, kind):
    PILImage.fromarray(photo("astronaut")[::4, ::4]).save(comfy.input_dir / "saiten_p.png")
    g = technical_graph("saiten_p.png", 10)
    g["9"] = {"class_type": "SaitenTestPoison",
              "inputs": {"images": ["10", 0], "index": 0, "kind": kind}}
    g["11"]["inputs"]["images"] = ["9", 0]
    h = comfy.run(g)
    first = h.text("12").splitlines()[0]
    assert first.startswith("#0 unscored") or float(first.split()[1]) < 1.0, first
