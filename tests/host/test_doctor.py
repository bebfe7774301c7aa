"""`python -m scoring doctor` on this very Python (real onnxruntime, torch, llama-cpp-python,
bitsandbytes as installed here), and the problems it names for the install mistakes users
make, each with its fix."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from scoring.host import doctor
from scoring.host import runtimes as R

REPO = Path(__file__).resolve().parents[2]
SECRET = "xai-NOT-A-REAL-KEY-0123456789abcdefABCDEF"


def run_doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring", "doctor", *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=300)


def test_cli_reports_this_python_in_text_and_json(tmp_path):
    models = tmp_path / "models"
    (models / "saiten_tagger" / "wd-vit-tagger-v3").mkdir(parents=True)
    (models / "saiten_vlm").mkdir()
    (models / "saiten_vlm" / "tiny.gguf").write_bytes(b"GGUF")
    env = {"SAITEN_TEST_JUDGE_KEY": SECRET}
    text = run_doctor("--models", str(models), "--key-env", "SAITEN_TEST_JUDGE_KEY", env=env)
    data = run_doctor("--json", "--models", str(models), "--key-env", "SAITEN_TEST_JUDGE_KEY",
                      env=env)
    facts = json.loads(data.stdout)
    assert text.returncode == data.returncode == (1 if facts["problems"] else 0)
    import onnxruntime

    assert facts["onnxruntime"]["installed"] == R.installed_runtimes() != {}
    assert facts["onnxruntime"]["providers"] == onnxruntime.get_available_providers()
    assert facts["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["nudenet_model"] and facts["nudenet_model"].endswith("320n.onnx")
    tagger = {Path(f["folder"]).name: f for f in facts["models"]["tagger"]}
    assert tagger["saiten_tagger"]["found"] == ["wd-vit-tagger-v3/"]
    assert tagger["wd14_tagger"]["exists"] is False
    vlm = {Path(f["folder"]).name: f for f in facts["models"]["vlm"]}
    assert vlm["saiten_vlm"]["found"] == ["tiny.gguf"]
    assert facts["judge_key"]["env_set"] is True
    assert SECRET not in text.stdout + text.stderr + data.stdout + data.stderr
    out = text.stdout
    assert "ONNX Runtime: " + ", ".join(f"{d} {v}" for d, v in R.installed_runtimes().items()) \
        in out
    assert "judge key: $SAITEN_TEST_JUDGE_KEY set: yes" in out
    assert f"{models / 'saiten_tagger'}: wd-vit-tagger-v3/" in out
    if facts["torch"]["version"]:  # (this file also runs on Pythons without torch)
        assert facts["torch"]["cuda"] == importlib.import_module("torch").version.cuda
    if facts["llama_cpp"]["version"]:
        assert facts["llama_cpp"]["mtmd"] is True  # 0.3.36 ships the vision bindings
    unset = json.loads(run_doctor("--json", "--key-env", "SAITEN_UNSET_VARIABLE").stdout)
    assert unset["judge_key"] == {**facts["judge_key"], "env": "SAITEN_UNSET_VARIABLE",
                                  "env_set": False}


def facts(**changes) -> dict:
    """This Python's real report with some facts replaced (what another user's has)."""
    base = doctor.report()
    for key, value in changes.items():
        base[key] = value
    return base


def test_cpu_and_gpu_builds_together_are_said_loudly_with_the_fix():
    f = facts(onnxruntime={"installed": {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"},
                           "providers": ["AzureExecutionProvider", "CPUExecutionProvider"],
                           "gpu_build_cuda": 13, "error": None})
    found = doctor.problems(f)
    assert any(p.startswith("SEVERAL ONNX Runtime builds") and
               "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in p
               for p in found), found
    assert any("offers no CUDA provider" in p for p in found)
    assert doctor.render({**f, "problems": found}).startswith("!! ")


def test_torch_cuda_against_onnxruntime_gpus_build():
    ort = {"installed": {"onnxruntime-gpu": "1.31.1"}, "gpu_build_cuda": 13, "error": None,
           "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    old_torch = {"version": "2.5.1+cu124", "cuda": "12.4", "gpu": True, "device": "RTX"}
    found = doctor.problems(facts(onnxruntime=ort, torch=old_torch))
    assert any("torch uses CUDA 12.4 but onnxruntime-gpu 1.31.1 is built for CUDA 13" in p
               and "pip install 'onnxruntime-gpu>=1.19,<1.27'" in p for p in found), found
    cpu_only = {"installed": {"onnxruntime": "1.32.0"}, "providers": ["CPUExecutionProvider"],
                "error": None}
    found = doctor.problems(facts(onnxruntime=cpu_only, torch=old_torch))
    assert any("onnxruntime is the CPU build" in p for p in found), found
