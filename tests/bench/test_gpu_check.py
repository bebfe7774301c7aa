"""bench/gpu_check.py on this CPU machine: it reports CUDA as absent, one line per check, and
exits 0; on ComfyUI's CUDA branch (a FakeGpu) it boots ComfyUI and the pack's policy alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402

sys.path.pop(0)


def test_without_cuda_every_check_is_skipped_with_the_reason():
    r = subprocess.run(["sh", str(REPO / "bench" / "gpu_check.sh")], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, SAITEN_VENV=str(Path(sys.executable).parent.parent)))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("gpu_check: CUDA absent (torch ") and "is False" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == [
        f"SKIP {name}" for name, _ in gpu_check.CHECKS]
    assert all("CUDA absent" in line for line in lines[1:])


def test_boots_comfyui_on_cuda_with_the_packs_policy_only(tmp_path):
    root = Path(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")).expanduser()
    if not (root / "main.py").is_file():
        pytest.skip(f"no ComfyUI at {root}")
    code = f"""
import json, sys
sys.path.insert(0, {str(REPO / "tests" / "comfyui")!r})
sys.path.insert(0, {str(REPO / "bench")!r})
from fake_cuda import FakeGpu
FakeGpu().install()
import gpu_check
from pathlib import Path
ctx = gpu_check.Context(Path({str(tmp_path)!r}), warm=False)
print(json.dumps({{"dev": str(ctx.dev), "policy": type(ctx.policy).__name__,
    "margin": ctx.policy.margin(ctx.dev), "nodes": "saiten_pack.nodes.tagger" in sys.modules,
    "comfy_api": "comfy_api" in sys.modules}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, COMFYUI_PATH=str(root)))
    assert r.returncode == 0, r.stderr[-3000:]
    facts = json.loads(r.stdout.strip().splitlines()[-1])
    assert facts["dev"] == "cuda:0" and facts["policy"] == "ComfyMemory"
    assert facts["margin"] > 1 << 30
    assert not facts["nodes"] and not facts["comfy_api"]  # the pack's nodes are not needed
