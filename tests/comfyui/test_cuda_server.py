"""A whole ComfyUI server on its CUDA branch (a FakeGpu; `fake_cuda_main.py` starts main.py
without --cpu): a tagger whose onnxruntime has no CUDA provider runs in RAM, and the
"Free memory" button's POST /free still evicts it — ComfyUI only unloads models registered
on its GPU, so the pack registers it there."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from comfy_harness import nudenet_tagger, start_comfy


@pytest.fixture(scope="module")
def gpu_comfy(comfy_root: Path, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMFYUI_PYTHON", str(Path(__file__).with_name("fake_cuda_python")))
        mp.setenv("SAITEN_REAL_PYTHON", sys.executable)
        server = start_comfy(comfy_root, tmp_path_factory.mktemp("cuda-comfy"))
    try:
        yield server
    finally:
        server.stop()


def free_until(comfy, text: str, timeout: float = 30) -> bool:
    """POST /free until `text` is in the log. ComfyUI's prompt worker reads the flag when it
    wakes: a /free that lands while the worker is still finishing the last prompt (before it
    waits again) sleeps with it until the next wake-up, so ask again as the button would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        comfy.free()
        for _ in range(10):
            if text in comfy.log(tail=200_000):
                return True
            time.sleep(0.2)
    return False


def test_post_free_evicts_a_tagger_running_in_ram(gpu_comfy):
    assert "Device: cuda:0" in gpu_comfy.log(tail=200_000)
    h = gpu_comfy.run({
        "1": {"class_type": "SaitenSampleImages", "inputs": {"size": 64}},
        "2": nudenet_tagger(["1", 0]),
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
    })
    assert h.ok, h.status
    assert "on CPU" in h.text("2")  # this onnxruntime has no CUDA provider
    assert "ComfyUI evicts" not in gpu_comfy.log(tail=200_000)
    assert free_until(gpu_comfy, "saiten: ComfyUI evicts onnx:"), gpu_comfy.log()[-3000:]
