"""nodes/shared/comfy_memory.py on ComfyUI's real CUDA branch, on this CPU machine.

`cuda_memory_probe.py` imports ComfyUI without `--cpu` over a `FakeGpu` (fake_cuda.py: only
what the card and driver would answer is scripted; nothing touches CUDA) and drives ComfyUI's
own `model_management` — `load_models_gpu`, `free_memory`, `unload_all_models` — with
weightless stand-ins for the diffusion model and the scorers. One subprocess per ComfyUI
command line (its options are read at import)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import REPO

PROBE = Path(__file__).with_name("cuda_memory_probe.py")
GiB = 1 << 30
RTX_2080 = {"name": "NVIDIA GeForce RTX 2080", "major": 7, "minor": 5}
GTX_1080 = {"name": "NVIDIA GeForce GTX 1080", "major": 6, "minor": 1}


def probe(comfy_root: Path, tmp: Path, **scenario) -> dict:
    r = subprocess.run(
        [sys.executable, str(PROBE), str(comfy_root), str(REPO), json.dumps(scenario),
         str(tmp)],
        cwd=comfy_root, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def normal(comfy_root: Path, tmp_path_factory) -> dict:
    return probe(comfy_root, tmp_path_factory.mktemp("normal"))


def test_comfyui_runs_its_cuda_branch(normal):
    assert normal["device"] == "cuda:0" and normal["vram_state"] == "NORMAL_VRAM"
    assert normal["policy_device"] == "cuda:0"
    assert normal["dtype"] == "bf16"  # compute capability 8.6


def test_a_scorer_in_ram_is_registered_on_comfyuis_device(normal):
    s = normal["ram_loaded"]
    assert s["registered"] == ["in-ram"] and s["where"] == {"in-ram": "cpu"}
    assert s["devices"] == ["cuda:0"]  # where ComfyUI's free_memory looks


def test_making_room_on_the_card_passes_a_scorer_in_ram_by(normal):
    s = normal["ram_after_making_room"]
    assert s["where"] == {"in-ram": "cpu"} and s["unloads"] == {"in-ram": 0}
    assert s["diffusion"] < 5 * GiB  # ComfyUI found its room on the card instead


def test_unload_all_models_evicts_a_scorer_in_ram(normal):
    s = normal["ram_after_unload_all"]
    assert s["where"] == {"in-ram": None} and s["unloads"] == {"in-ram": 1}
    assert s["registered"] == [] and s["devices"] == []


def test_reservation_keeps_comfyuis_margin_free(normal):
    margin = normal["minimum_inference_memory"]
    assert normal["margin"] == math.ceil(margin)  # 0.8 GiB + extra_reserved_memory()
    assert normal["extra_reserved"] == 400 * 1024 * 1024  # Linux default
    s = normal["after_small"]  # 3 GiB free beside the diffusion model: no eviction needed
    assert s["diffusion"] == 5 * GiB and s["where"] == {"small": "cuda:0"}
    s = normal["after_big"]
    assert s["free"] >= margin and s["free"] - margin < 2 * GiB * 0.01


def test_the_diffusion_model_goes_before_other_scorers(normal):
    assert normal["after_big_evicted"] == ["diffusion0"]  # partly offloaded, not evicted
    s = normal["after_big"]
    assert s["where"] == {"small": "cuda:0", "big": "cuda:0"}
    assert s["unloads"] == {"small": 0, "big": 0}
    assert 0 < s["diffusion"] < 5 * GiB


def test_registration_evicts_nothing_more(normal):
    """load_models_gpu would free a further minimum_inference_memory() for each scorer."""
    assert normal["after_big"]["free"] == pytest.approx(normal["margin"], abs=1)
    assert normal["before_ksampler"]["where"] == {"tagger": "cuda:0", "vlm": "cuda:0"}


def test_torch_cache_is_not_room_for_other_runtimes(normal):
    s = normal["cache"]
    assert s["comfy_free"] > s["free"] + GiB // 2  # ComfyUI counts torch's cache as free
    assert s["free"] >= normal["margin"]  # the driver's free memory kept the margin
    assert s["reserved"] == pytest.approx(GiB, rel=0.01)


def test_the_ksampler_evicts_scorers_smallest_first(normal):
    """The README's order: ComfyUI loading the next model evicts partly loaded models, then
    fully loaded ones from the smallest."""
    assert normal["ksampler_evicted"] == ["diffusion0", "tagger", "vlm"]
    assert normal["after_ksampler"]["diffusion"] == 6 * GiB


def test_out_of_memory_recovery_evicts_all_but_the_scorer(normal):
    assert normal["recovered"] is True
    s = normal["after_recover"]
    assert s["where"] == {"tagger": "cuda:0"} and s["diffusion"] == 0
    assert s["free"] > s["free_before"]


def test_onnx_out_of_memory_evicts_through_comfyui_and_retries(normal):
    s = normal["onnx_retry"]
    assert s["retried"] is True and s["shape"][0] == 1
    assert s["diffusion"] == 0  # ComfyUI evicted the diffusion model for it
    assert [n for n in s["registered"] if n.startswith("onnx:")]  # still registered


def test_transformers_precision_and_refusal_through_comfyui(normal):
    assert normal["vlm_dtype"] == "bf16"
    assert "nf4" in normal["vlm_refused"] and "GGUF" in normal["vlm_refused"]
    assert normal["vlm_loaded"] is False  # no fp32 copy in RAM either


def test_reserve_vram_widens_the_margin(comfy_root, tmp_path):
    f = probe(comfy_root, tmp_path, cli={"reserve_vram": 2.0})
    assert f["extra_reserved"] == 2 * GiB
    assert f["margin"] == math.ceil(0.8 * GiB + 2 * GiB)
    assert f["after_big"]["free"] >= f["margin"]
    assert f["after_big"]["diffusion"] < 4 * GiB  # more of it offloaded to keep 2.8 GiB free


def test_lowvram_uses_free_vram_only(comfy_root, tmp_path):
    f = probe(comfy_root, tmp_path, cli={"lowvram": True}, gpu=RTX_2080)
    assert f["vram_state"] == "LOW_VRAM" and f["policy_device"] == "cuda:0"
    small, big = f["after_small"], f["after_big"]
    assert small["where"] == {"small": "cuda:0"}  # fitted beside the diffusion model
    assert big["where"]["big"] == "cpu" and big["diffusion"] == small["diffusion"]
    assert f["after_big_evicted"] == []  # nothing evicted
    assert f["dtype"] == "fp16"  # compute capability 7.5: no native bf16
    assert f["vlm_dtype"] == "fp16"  # what the transformers VLM then loads in


def test_novram_keeps_scorers_on_the_cpu(comfy_root, tmp_path):
    f = probe(comfy_root, tmp_path, cli={"novram": True}, gpu=GTX_1080)
    assert f["vram_state"] == "NO_VRAM" and f["policy_device"] == "cpu"
    assert f["after_big"]["where"] == {"small": "cpu", "big": "cpu"}
    assert f["after_big"]["devices"] == ["cuda:0"]  # still evictable by unload_all_models
    assert f["dtype"] == "fp32"  # ComfyUI's choice for a GTX 1080 on Linux
