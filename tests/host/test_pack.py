"""Where the pack is on disk (`scoring.host.pack`): the embedded samples are small and
committed, and the ComfyUI around the pack is found only when the pack sits in one's
custom_nodes folder — checked by loading the real module from such a layout."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from PIL import Image as PILImage

from scoring.host import pack
from scoring.host.pack import SAMPLES


def test_samples_are_small_and_committed():
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(files) >= 6 and sum(p.stat().st_size for p in files) < 300_000
    for p in files:
        with PILImage.open(p) as img:
            assert max(img.size) <= 512 and p.stat().st_size <= 40_000


def test_comfyui_root_is_found_only_around_an_installed_pack(tmp_path):
    assert pack.comfyui_root() is None  # this checkout is not inside a ComfyUI

    def loaded(root: Path):
        copy = root / "ComfyUI" / "custom_nodes" / "ComfyUI-Saiten" / "scoring" / "host"
        copy.mkdir(parents=True)
        shutil.copy(pack.__file__, copy / "pack.py")
        spec = importlib.util.spec_from_file_location("pack_copy", copy / "pack.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    installed = loaded(tmp_path / "a")
    (tmp_path / "a" / "ComfyUI" / "main.py").write_text("")
    assert installed.comfyui_root() == (tmp_path / "a" / "ComfyUI").resolve()
    assert installed.SAMPLES == (tmp_path / "a" / "ComfyUI" / "custom_nodes" / "ComfyUI-Saiten"
                                 / "samples").resolve()
    assert loaded(tmp_path / "b").comfyui_root() is None  # no main.py: not a ComfyUI
