"""A whole ComfyUI server on its CUDA branch (a FakeGpu; `fake_cuda_main.py` starts main.py
without --cpu): a tagger whose onnxruntime has no CUDA provider runs in RAM, and the
"Free memory" button's POST /free still evicts it — ComfyUI only unloads models registered
on its GPU, so the pack registers it there."""

from __future__ import annotations

import sys
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
    evicted = "saiten: ComfyUI evicts onnx:"
    assert gpu_comfy.free_until(lambda: evicted in gpu_comfy.log(tail=200_000)), \
        gpu_comfy.log()[-3000:]
