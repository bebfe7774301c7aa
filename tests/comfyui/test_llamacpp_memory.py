"""The llama.cpp VLM source inside a real ComfyUI import: ComfyUI's eviction (the "Free
memory" button, `free_memory` before a diffusion model loads) really unloads it.

The probe runs in a subprocess (ComfyUI's global state must not leak into this process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import REPO

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed",
                    exc_type=ImportError)
PROBE = Path(__file__).with_name("llamacpp_memory_probe.py")


@pytest.fixture(scope="module")
def facts(comfy_root: Path, tmp_path_factory) -> dict:
    r = subprocess.run(
        [sys.executable, str(PROBE), str(comfy_root), str(REPO),
         str(tmp_path_factory.mktemp("gguf"))],
        cwd=comfy_root, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_scoring_registers_the_model_with_comfyui(facts):
    assert facts["scored"] == [True, True]
    s = facts["after_score"]
    assert s["registered"] == [facts["label"]] and s["loaded"] is True
    assert s["sizes"] == [facts["memory_bytes"]]
    assert facts["mtmd_before"] is True


def test_comfyui_free_unloads_model_and_vision_context(facts):
    s = facts["after_unload_all"]
    assert s == {"registered": [], "sizes": [], "loaded": False}
    assert facts["handler_alive"] is False  # freed, not merely forgotten


def test_scoring_again_reloads_and_free_memory_evicts(facts):
    assert facts["rescored"] == [True]
    assert facts["after_rescore"]["registered"] == [facts["label"]]
    assert facts["after_free_memory"] == {"registered": [], "sizes": [], "loaded": False}
