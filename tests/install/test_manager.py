"""The pack installed by the REAL ComfyUI-Manager (`cm_cli install <git URL>`, comfyui_manager
4.0.4 from PyPI, the version ComfyUI 0.8.0 pins) from a bare clone of this working tree
served on 127.0.0.1, into fresh venvs:

- a GPU user's Python (onnxruntime-gpu, opencv-python): no ONNX Runtime or OpenCV package is
  added, nothing installed changes version, the CUDA provider is still listed, NudeNet's
  model is found and scores, and the pack loads in ComfyUI and runs the offline example
  workflow on that Python (torch and ComfyUI's other packages borrowed from the suite's venv
  behind the venv's own, see `borrowed_packages`: installing torch again costs minutes);
- an empty Python (only what the Manager itself needs): exactly one ONNX Runtime comes in,
  NudeNet scores, and running install.py again changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from venvs import (
    PACK,
    REPO,
    RUNTIMES,
    borrowed_packages,
    dists,
    fresh_comfyui,
    make_venv,
    need,
    pip,
    run,
    serve_pack,
    timed,
)

MANAGER = ("comfyui_manager==4.0.4", "aiohttp", "pyyaml")
"""ComfyUI 0.8.0's manager_requirements.txt, plus what cm_cli imports."""
GPU_USER = ("onnxruntime-gpu", "opencv-python")
"""What ReActor / WD14 / DWPose users have (TESTING.md)."""
NOT_BORROWED = ("onnxruntime", "onnxruntime-gpu", "opencv-python", "opencv-python-headless",
                "nudenet")
"""What the suite's venv holds that the GPU user's venv must not see from it."""
CUDA = "CUDAExecutionProvider"
PROVIDERS = "import onnxruntime as o; print(','.join(o.get_available_providers()))"


@pytest.fixture(scope="module")
def pack_url(tmp_path_factory):
    with serve_pack(tmp_path_factory.mktemp("served")) as url:
        yield url


def comfyui(dest: Path) -> Path:
    root = fresh_comfyui(dest)
    need(root, "no ComfyUI to install into (COMFYUI_PATH or ~/comfy/ComfyUI)")
    return root


def manager_install(py: Path, root: Path, url: str) -> str:
    env = {**os.environ, "COMFYUI_PATH": str(root)}
    env.pop("PYTHONPATH", None)
    with timed("cm_cli install"):
        out = run([py, "-m", "comfyui_manager.cm_cli", "install", url], cwd=root, env=env)
    assert "[INSTALLED]" in out, out[-4000:]
    assert (root / "custom_nodes" / PACK / "install.py").is_file()
    return out


def assert_nudenet_scores(py: Path, pack: Path, out: Path) -> None:
    """The CLI of the installed pack, NudeNet alone on the astronaut photo: the real detector
    ran (it finds her face), no abstention."""
    run([py, "-m", "scoring", "score", "samples/astronaut.jpg", "--sources", "nudenet",
         "--min-sources", "1", "--out", out], cwd=pack)
    row = json.loads((out / "report.jsonl").read_text(encoding="utf-8").splitlines()[0])
    card = row["cards"][0]
    assert row["used"] == ["nudenet"] and card["abstained"] is None, row
    assert "FACE_FEMALE" in card["tags"], card


def test_gpu_users_onnxruntime_and_opencv_stay(pack_url, tmp_path, monkeypatch):
    root = comfyui(tmp_path / "ComfyUI")
    py = make_venv(tmp_path / "venv")
    pip(py, *MANAGER, *GPU_USER)
    before = dists(py)
    assert CUDA in run([py, "-c", PROVIDERS])

    out = manager_install(py, root, pack_url)

    after = dists(py)
    added = sorted(set(after) - set(before))
    assert not [d for d in added if d.startswith(("onnxruntime", "opencv"))], added
    assert {d: (before[d], after.get(d)) for d in before if after.get(d) != before[d]} == {}
    assert "nudenet" in added
    assert "onnxruntime-gpu" in out and "left as is" in out
    assert CUDA in run([py, "-c", PROVIDERS]).strip().split(",")

    pack = root / "custom_nodes" / PACK
    assert_nudenet_scores(py, pack, tmp_path / "report")

    from comfy_harness import start_comfy  # the pack loads in ComfyUI on this very Python

    monkeypatch.setenv("COMFYUI_PYTHON", str(py))
    with borrowed_packages(py, NOT_BORROWED), timed("ComfyUI start + workflow (gpu venv)"):
        assert CUDA in run([py, "-c", PROVIDERS])  # still the venv's own onnxruntime-gpu
        comfy = start_comfy(root, root)
        try:
            check_loaded_and_runs(comfy)
        finally:
            comfy.stop()
    assert dists(py) == after  # starting ComfyUI installed nothing either

    doctor = run([py, "-m", "scoring", "doctor"], cwd=pack)  # rc 0: no problems
    assert "OK: no problems found." in doctor and "CUDAExecutionProvider" in doctor, doctor
    # what nudenet's dependencies used to do: the CPU build beside the GPU one
    pip(py, "onnxruntime")
    proc = subprocess.run([py, "-m", "scoring", "doctor"], cwd=pack, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout.startswith("!! "), proc.stdout
    assert "SEVERAL ONNX Runtime builds are installed (onnxruntime, onnxruntime-gpu)" in \
        proc.stdout and "pip uninstall -y onnxruntime onnxruntime-gpu && pip install " \
        "onnxruntime-gpu" in proc.stdout
    warned = run([py, "install.py"], cwd=pack)
    assert "WARNING: several ONNX Runtime builds" in warned and "running:" not in warned


def check_loaded_and_runs(comfy) -> None:
    """The pack's nodes are listed, it did not fail to import, and the offline example
    workflow runs with NudeNet scoring (no abstention)."""
    assert {"SaitenTagger", "SaitenEnsembleAggregate", "SaitenScoreFilter"} <= set(
        comfy.object_info)
    failed = [line for line in comfy.log(200_000).splitlines()
              if PACK in line and ("Cannot import" in line or "IMPORT FAILED" in line)]
    assert failed == []
    prompt, _ = comfy.workflow_prompt(REPO / "example_workflows" / "saiten_offline_filter.json")
    for node in prompt.values():
        if node["class_type"] == "SaitenSampleImages":
            node["inputs"]["size"] = 128
    h = comfy.run(prompt, timeout=300)
    assert h.ok, comfy.log()
    tagger = next(k for k, v in prompt.items() if v["class_type"] == "SaitenTagger")
    assert h.text(tagger) and "abstained" not in h.text(tagger), h.text(tagger)


def test_empty_python_gets_one_runtime_and_nudenet(pack_url, tmp_path):
    root = comfyui(tmp_path / "ComfyUI")
    py = make_venv(tmp_path / "venv")
    pip(py, *MANAGER)

    manager_install(py, root, pack_url)

    installed = dists(py)
    assert [d for d in RUNTIMES if d in installed] == ["onnxruntime"]  # no torch: the CPU one
    assert not [d for d in installed if d.startswith("opencv")]
    assert "nudenet" in installed
    pack = root / "custom_nodes" / PACK
    assert_nudenet_scores(py, pack, tmp_path / "report")

    again = run([py, "install.py"], cwd=pack)  # safe to run twice: nothing to do
    assert again.count("left as is") == 2 and "running:" not in again, again
    assert dists(py) == installed
