"""nodes/shared/comfy_memory.py inside a real ComfyUI import: ComfyUI's own eviction
(`free_memory`, `unload_all_models` = POST /free) unloads our sessions; re-loading an
already-loaded one does not; a source that lets go by itself deregisters.

The probe runs in a subprocess (ComfyUI's top-level `nodes` module and global state must
not leak into this test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import REPO

PROBE = Path(__file__).with_name("memory_probe.py")


@pytest.fixture(scope="module")
def facts(comfy_root: Path) -> dict:
    r = subprocess.run(
        [sys.executable, str(PROBE), str(comfy_root), str(REPO)],
        cwd=comfy_root, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_loaded_source_is_registered_with_its_size(facts):
    assert facts["device"] == "cpu"
    assert facts["score"] == [50.0, 50.0]  # the onnx session really ran
    s = facts["after_load"]
    assert s["registered"] == ["probe-a"] and s["loaded"] == {"probe-a": True}
    assert facts["size"] == [64 * 1024 * 1024]


def test_load_models_gpu_on_a_loaded_session_keeps_it(facts):
    s = facts["after_reload_same"]
    assert s["registered"] == ["probe-a"]
    assert s["loaded"] == {"probe-a": True} and s["unloads"] == {"probe-a": 0}


def test_free_memory_on_cpu_only_evicts_when_needed(facts):
    s = facts["after_small_free"]
    assert s["loaded"] == {"probe-a": True} and s["registered"] == ["probe-a"]
    s = facts["after_free_memory"]
    assert s["loaded"] == {"probe-a": False} and s["unloads"] == {"probe-a": 1}
    assert s["registered"] == [] and s["policy"] == [] and s["all_models"] == 0


def test_unload_all_models_releases_and_reload_registers_again(facts):
    assert facts["after_rescore"]["registered"] == ["probe-a"]
    assert facts["after_rescore"]["loads"] == {"probe-a": 2}
    s = facts["after_unload_all"]
    assert s["loaded"] == {"probe-a": False} and s["unloads"] == {"probe-a": 2}
    assert s["registered"] == []


def test_eviction_of_several_models_beside_a_torch_model(facts):
    s = facts["three_loaded"]
    assert sorted(s["registered"]) == ["probe-a", "probe-b"] and s["all_models"] == 3
    s = facts["after_unload_three"]
    assert s["all_models"] == 0 and s["registered"] == []
    assert s["loaded"] == {"probe-a": False, "probe-b": False}
    assert s["unloads"] == {"probe-a": 3, "probe-b": 1}  # each exactly once more


def test_source_letting_go_by_itself_deregisters(facts):
    s = facts["after_self_unload"]
    assert s["registered"] == [] and s["policy"] == [] and s["unloads"] == {"probe-a": 4}
    assert facts["after_self_unload_then_free"]["unloads"] == {"probe-a": 4}  # no double


def test_a_dropped_patcher_does_not_unload(facts):
    s = facts["after_stray_gc"]
    assert s["registered"] == ["probe-a"] and s["loaded"]["probe-a"] is True
    assert s["unloads"]["probe-b"] == 1  # unchanged by the stray patcher's __del__


def test_a_reused_id_never_evicts_the_wrong_model(facts):
    s = facts["after_id_reuse"]
    assert "probe-c" in s["registered"] and s["loaded"]["probe-c"] is True
    s = facts["after_id_reuse_free"]  # (probe-a stands in for a dead model: not asserted)
    assert s["loaded"]["probe-c"] is False and s["unloads"]["probe-c"] == 1
    assert s["registered"] == []
