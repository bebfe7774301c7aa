"""The llama.cpp backend's GPU paths (`scoring.sources.vlm.llamacpp_offload`) on real
llama.cpp (CPU build) with tiny GGUFs, and the GPU layer plan as arithmetic.

Faked: only what llama.cpp would do on a GPU machine — offload is supported, and creating
a context with layers on the GPU fails (the card is full) after the model's weights went
there — and the host's memory answers."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest

from scoring.host.memory import MemoryPolicy
from scoring.sources import SourceError, create
from scoring.sources.vlm.llamacpp_offload import (
    compute_bytes,
    plan_gpu_layers,
    retry_layers,
    vision_bytes,
)

try:
    import llama_cpp
except ImportError:
    llama_cpp = None
needs_llama_cpp = pytest.mark.skipif(llama_cpp is None, reason="llama-cpp-python is not "
                                     "installed")
pytest_plugins = ["helpers.models.gguf_models"]  # the session fixture `gguf_models`
GiB = 1 << 30


class GpuHost(MemoryPolicy):
    """A host whose device is a GPU with `free` bytes usable after eviction."""

    def __init__(self, device="cuda:0", free=8 * GiB):
        self.dev, self.free_bytes, self.events = device, free, []

    def device(self):
        return self.dev

    def reserve(self, nbytes, device):
        self.events.append(("reserve", nbytes, device))
        return self.free_bytes

    def loaded(self, model, nbytes, device):
        self.events.append(("loaded", nbytes, device))

    def released(self, model):
        self.events.append(("released",))


class GpuWeights:
    """What llama.cpp put on the card before the context failed."""


@pytest.fixture
def full_card(monkeypatch):
    """llama.cpp with GPU offload whose context creation fails with any layer on the GPU, as
    on a full card: the model (and its GPU weights) is loaded, then the context fails."""
    real = llama_cpp.Llama
    seen: dict = {"attempts": [], "alive": [], "kwargs": [], "weights": []}

    class FullCardLlama(real):
        def __init__(self, *args, n_gpu_layers=0, **kwargs):
            seen["attempts"].append(n_gpu_layers)
            seen["alive"].append([w() is not None for w in seen["weights"]])
            seen["kwargs"].append(kwargs)
            if n_gpu_layers != 0:
                self._stack = contextlib.ExitStack()  # as Llama.__init__ has made it by then
                self._gpu_weights = GpuWeights()
                seen["weights"].append(weakref.ref(self._gpu_weights))
                raise ValueError("Failed to create llama_context")
            super().__init__(*args, n_gpu_layers=0, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", FullCardLlama)
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: True)
    return seen


def source(models, host, **kw):
    return create("vlm-llamacpp", model_path=models.qwen_text, mmproj_path=models.qwen_mmproj,
                  memory=host, method="logprob", comment=False, n_threads=1, **kw)


@needs_llama_cpp
def test_retries_all_then_half_then_cpu_each_failed_model_dead(gguf_models, full_card):
    host = GpuHost()
    src = source(gguf_models, host)
    src.load()
    try:
        n_layer = src.pair.n_layer
        assert full_card["attempts"] == [-1, n_layer // 2, 0]
        assert full_card["alive"] == [[], [False], [False, False]]  # dead before each retry
        assert host.events[-1] == ("loaded", src.memory_bytes(), "cpu")
        assert "CPU" in src.describe()
    finally:
        src.unload()


@needs_llama_cpp
def test_uses_comfyuis_gpu_only(gguf_models, full_card):
    src = source(gguf_models, GpuHost(device="cuda:1"))
    src.load()
    src.unload()
    for kwargs in full_card["kwargs"]:
        assert kwargs["split_mode"] == llama_cpp.LLAMA_SPLIT_MODE_NONE
        assert kwargs["main_gpu"] == 1


@needs_llama_cpp
def test_every_attempt_failing_is_one_clear_error(gguf_models, full_card, monkeypatch):
    real = llama_cpp.Llama

    class Broken(real):
        def __init__(self, *args, **kwargs):
            self._stack = contextlib.ExitStack()
            raise ValueError("Failed to load model from file")

    monkeypatch.setattr(llama_cpp, "Llama", Broken)
    with pytest.raises(SourceError, match=r"could not load .*Failed to load model"):
        source(gguf_models, GpuHost()).load()
    gc.collect()


def test_retry_layers():
    assert retry_layers(-1, 28) == [-1, 14, 0]
    assert retry_layers(20, 28) == [20, 10, 0]
    assert retry_layers(1, 28) == [1, 0]
    assert retry_layers(0, 28) == [0]


def test_plan_counts_compute_buffers_and_vision_warm_up(gguf_models):
    src = source(gguf_models, GpuHost())
    p = src.pair
    assert p.n_vocab > 0 and p.vision_patch > 0
    compute, vision = compute_bytes(p, src.n_ctx), vision_bytes(p, src.max_pixels)
    weights_kv = src.memory_bytes() - p.mmproj_bytes - compute - vision
    assert weights_kv > p.model_bytes  # plus the KV cache
    # a card with room for the weights, mmproj and KV cache but not the buffers: not all
    tight = p.model_bytes + p.mmproj_bytes + (weights_kv - p.model_bytes) + compute // 2
    assert plan_gpu_layers(p.n_layer, weights_kv, p.mmproj_bytes + compute + vision,
                           tight) != -1
    assert plan_gpu_layers(p.n_layer, weights_kv, p.mmproj_bytes + compute + vision,
                           src.memory_bytes()) == -1


def test_qwen_7b_at_4k_context_on_an_8gb_card_is_not_all_layers():
    """Qwen2.5-VL-7B Q4_K_M (4.68 GB) + its mmproj (1.35 GB): weights, mmproj and KV cache
    alone would fit 6.8 GB; the buffers do not."""
    from scoring.sources.vlm.gguf import GGUFPair

    class Facts(GGUFPair):
        model_bytes = 4_680_000_000
        mmproj_bytes = 1_350_000_000

    p = Facts(model_path=None, mmproj_path=None, arch="qwen2vl", n_embd=3584, n_layer=28,
              n_head=28, n_head_kv=4, projector="qwen2.5vl_merger", projector_width=3584,
              n_vocab=152_064, vision_patch=14, vision_width=1280, vision_heads=16)
    kv = 2 * 2 * 4096 * 28 * 3584 * 4 // 28
    fixed = p.mmproj_bytes + compute_bytes(p, 4096) + vision_bytes(p, 1024 * 1024)
    free = int(6.8 * GiB)  # usable after eviction and the margin
    assert p.model_bytes + kv + p.mmproj_bytes < free
    assert 0 < plan_gpu_layers(28, p.model_bytes + kv, fixed, free) < 28


@pytest.mark.parametrize("free,expected", [
    (None, -1),                   # unknown: offload all, loading falls back on failure
    (10_000, -1),                 # everything fits
    (8_000, 24),                  # 6000 of 8000 weight bytes fit after the overhead
    (2_000, 0),                   # only the overhead fits
    (500, 0),
])
def test_plan_gpu_layers(free, expected):
    assert plan_gpu_layers(32, 8_000, 2_000, free) == expected
