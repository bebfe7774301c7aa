"""The memory policy's shared facts (`scoring.host.memory`): which errors are an accelerator
out of memory, and the precision a torch model gets without a host to ask."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers.models.onnx_models import ALLOC_FAILED
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from scoring.host.memory import MemoryPolicy, cuda_dtype, is_oom


def test_allocation_failures_are_recognised():
    assert is_oom(RuntimeException(ALLOC_FAILED))
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(RuntimeException("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad input"))


@pytest.mark.parametrize(("major", "dtype"), [(7, "fp16"), (8, "bf16"), (9, "bf16")])
def test_precision_follows_the_device(monkeypatch, major, dtype):
    """Faked: only what torch reports about a CUDA card this machine lacks."""
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(major=major))
    assert cuda_dtype("cuda:0") == MemoryPolicy().dtype("cuda:0") == dtype
    assert cuda_dtype("cpu") == "fp32" and cuda_dtype("mps") == "fp16"
