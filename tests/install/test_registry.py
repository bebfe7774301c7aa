"""The archive `comfy node publish` uploads (git-tracked files minus .comfyignore's gitwildmatch
patterns, plus [tool.comfy] includes), unpacked alone into a fresh ComfyUI's custom_nodes: it
holds what the nodes need and none of tests/bench/scripts/CI, the pack loads, and the offline
example workflow runs from it."""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pathspec
from venvs import PACK, export_pack, fresh_comfyui, need, timed

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def publish_archive(src: Path, dest: Path) -> Path:
    """What comfy-cli's `zip_files` builds from a checkout at `src`."""
    patterns = [ln.strip() for ln in (src / ".comfyignore").read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    with warnings.catch_warnings():  # pathspec 1.x deprecates the name comfy-cli uses
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    includes = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["comfy"]["includes"]
    tracked = subprocess.run(["git", "ls-files"], cwd=src, capture_output=True, text=True,
                             check=True).stdout.split("\n")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name in filter(None, tracked):
            forced = any(name == i or name.startswith(i.rstrip("/") + "/") for i in includes)
            if forced or not spec.match_file(name):
                z.write(src / name, name)
    return dest


def test_published_archive_loads_and_runs_the_offline_workflow(tmp_path):
    root = fresh_comfyui(tmp_path / "ComfyUI")
    need(root, "no ComfyUI to unpack into (COMFYUI_PATH or ~/comfy/ComfyUI)")
    archive = publish_archive(export_pack(tmp_path / "src"), tmp_path / "node.zip")
    names = zipfile.ZipFile(archive).namelist()
    tops = {n.split("/")[0] for n in names}
    assert not tops & {"tests", "bench", "scripts", ".ci", "requirements-test.txt"}, tops
    for needed in ("__init__.py", "install.py", "requirements.txt", "pyproject.toml",
                   "nodes/tagger.py", "scoring/cli/__init__.py", "web/saiten.js",
                   "web/docs/SaitenTagger.md",
                   "locales/ja/nodeDefs.json", "example_workflows/saiten_offline_filter.json"):
        assert needed in names, needed
    assert any(n.startswith("samples/") for n in names)
    pack = root / "custom_nodes" / PACK
    zipfile.ZipFile(archive).extractall(pack)

    from comfy_harness import start_comfy
    from test_manager import check_loaded_and_runs

    with timed("ComfyUI start + workflow (archive)"):
        comfy = start_comfy(root, root)
        try:
            assert comfy.pack_dir == pack and not pack.is_symlink()
            check_loaded_and_runs(comfy)
        finally:
            comfy.stop()
