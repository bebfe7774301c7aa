"""ONNX sessions on the CUDA paths, on real onnxruntime (CPU build) with tiny models.

Faked: only what onnxruntime-gpu would do on a GPU machine — list the CUDA provider, report
the CUDA version it was built for, fail an allocation — and the host's memory answers."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers.models.onnx_models import ALLOC_FAILED, build_wd, wd_tags
from onnxruntime.capi import build_and_package_info
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from scoring.host.memory import MemoryPolicy
from scoring.sources import SourceError
from scoring.sources.onnx import cuda as onnx_cuda
from scoring.sources.onnx import session as onnx_session


class Host(MemoryPolicy):
    """A GPU host that records what it is asked; `free` answers from a script."""

    def __init__(self, free=(), recovers=True):
        self.events, self.frees, self.recovers = [], list(free), recovers

    def device(self):
        return "cuda:0"

    def reserve(self, nbytes, device):
        self.events.append(("reserve", device))
        return 6 << 30

    def free(self, device):
        return self.frees.pop(0) if self.frees else None

    def recover(self, model, device):
        self.events.append(("recover", device))
        return self.recovers

    def loaded(self, model, nbytes, device):
        self.events.append(("loaded", nbytes, device))

    def released(self, model):
        self.events.append(("released",))


class FailsOnce:
    """A session whose first `run` fails the way onnxruntime's CUDA arena does."""

    def __init__(self, session, failures=1):
        self.session, self.failures = session, failures

    def run(self, *args):
        if self.failures:
            self.failures -= 1
            raise RuntimeException(ALLOC_FAILED)
        return self.session.run(*args)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.fixture(scope="module")
def wd_model(tmp_path_factory):
    tags = wd_tags()
    d = build_wd(tmp_path_factory.mktemp("wd") / "m", tags, np.eye(3, len(tags)),
                 np.zeros(len(tags)), size=32)
    return d / "model.onnx"


@pytest.fixture
def gpu_build(monkeypatch):
    """onnxruntime-gpu as installed on a GPU machine: CUDA listed, built for `cuda_version`."""
    def install(cuda_version: str):
        listed = ort.get_available_providers()
        monkeypatch.setattr(ort, "get_available_providers",
                            lambda: ["CUDAExecutionProvider", *listed])
        monkeypatch.setattr(build_and_package_info, "cuda_version", cuda_version, raising=False)
    onnx_cuda.forget()
    onnx_session.clear()
    yield install
    onnx_session.clear()
    onnx_cuda.forget()


def cuda_model(path, host, session=None) -> onnx_session.OnnxModel:
    session = session or ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return onnx_session.OnnxModel(path, session, 1 << 20, "cuda:0", memory=host)


def batch() -> np.ndarray:
    return np.full((2, 32, 32, 3), 255.0, np.float32)


def test_cuda_provider_options_share_the_card():
    opts = onnx_cuda.provider_options("cuda:1", 3 << 30)
    assert opts == {"device_id": "1", "arena_extend_strategy": "kSameAsRequested",
                    "cudnn_conv_algo_search": "HEURISTIC", "cudnn_conv_use_max_workspace": "0",
                    "gpu_mem_limit": str(3 << 30)}
    assert "gpu_mem_limit" not in onnx_cuda.provider_options("cuda", None)


def test_out_of_memory_while_running_evicts_and_retries(wd_model):
    host = Host()
    good = cuda_model(wd_model, host).run(batch())[0]
    model = cuda_model(wd_model, host, FailsOnce(cuda_model(wd_model, host).session))
    out = model.run(batch())[0]
    assert host.events == [("recover", "cuda:0")]
    np.testing.assert_array_equal(out, good)


def test_out_of_memory_with_nothing_to_evict_is_a_clear_error(wd_model):
    host = Host(recovers=False)
    model = cuda_model(wd_model, host, FailsOnce(cuda_model(wd_model, host).session))
    with pytest.raises(SourceError, match="out of memory on cuda:0 and nothing left to evict"):
        model.run(batch())


def test_other_errors_and_cpu_sessions_are_not_retried(wd_model):
    host = Host()
    model = cuda_model(wd_model, host, FailsOnce(cuda_model(wd_model, host).session))
    model.device = "cpu"
    with pytest.raises(RuntimeException):
        model.run(batch())
    assert host.events == []


def test_measured_vram_is_registered_after_the_first_run(wd_model):
    host = Host(free=[(5 << 30) - (300 << 20)])
    model = cuda_model(wd_model, host)
    model.baseline = 5 << 30
    model.run(batch())
    model.run(batch())
    assert host.events == [("loaded", 300 << 20, "cuda:0")]  # once, measured not estimated


def test_cuda_major_mismatch_goes_to_cpu_before_evicting(wd_model, gpu_build):
    gpu_build("12.9")
    assert torch.version.cuda.split(".")[0] != "12"
    host = Host()
    model = onnx_session.open_model(wd_model, device="auto", memory=host)
    assert model.provider == "CPUExecutionProvider" and model.device == "cpu"
    assert "built for CUDA 12.9" in model.note and f"CUDA {torch.version.cuda}" in model.note
    assert [e[0] for e in host.events] == ["loaded"] and host.events[0][2] == "cpu"


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_cuda_that_does_not_load_is_remembered_for_the_process(wd_model, gpu_build, tmp_path):
    gpu_build(torch.version.cuda)  # majors match; the CUDA provider still fails to load here
    host = Host()
    first = onnx_session.open_model(wd_model, device="cuda", memory=host)
    assert first.provider == "CPUExecutionProvider" and "CUDA requested" in first.note
    assert [e[0] for e in host.events] == ["reserve", "loaded"]
    assert host.events[-1][2] == "cpu"
    tags = wd_tags()
    other = build_wd(tmp_path / "other", tags, np.eye(3, len(tags)), np.zeros(len(tags)),
                     size=32) / "model.onnx"
    onnx_session.open_model(other, device="cuda", memory=host)
    assert [e[0] for e in host.events] == ["reserve", "loaded", "loaded"]  # no second eviction


def test_out_of_memory_creating_a_cuda_session_falls_back_to_cpu(wd_model, gpu_build,
                                                                  monkeypatch, tmp_path):
    tags = wd_tags()
    other_model = build_wd(tmp_path / "other", tags, np.eye(3, len(tags)), np.zeros(len(tags)),
                           size=32) / "model.onnx"
    gpu_build(torch.version.cuda)
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=()):
        if any("CUDA" in str(p) for p in providers):
            raise RuntimeException(ALLOC_FAILED)
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", session)
    other = onnx_session.open_model(other_model, device="cpu")

    class Evicting(Host):
        def recover(self, model, device):  # as ComfyUI does: evict the other sessions
            other.unload()
            return super().recover(model, device)

    host = Evicting()
    model = onnx_session.open_model(wd_model, device="cuda", memory=host)
    assert other.closed
    assert [e[0] for e in host.events] == ["reserve", "recover", "loaded"]
    assert model.device == "cpu" and "out of memory creating the session" in model.note
    assert host.events[-1][2] == "cpu"
    assert model.run(batch())[0].shape[0] == 2
