"""The ONNX Runtime builds (`scoring.host.runtimes`, shared with install.py): which CUDA an
onnxruntime-gpu release is built for, and which build a Python with none gets."""

from __future__ import annotations

from scoring.host import runtimes as R


def test_gpu_build_table():
    assert [R.gpu_build_cuda(v) for v in ("1.18.1", "1.19.0", "1.26.0", "1.27.0", "1.31.1")] \
        == [11, 12, 12, 13, 13]
    assert R.choose_runtime(None, False)[0] == R.CPU_BUILD
    assert R.choose_runtime("13.0", False) == (R.CPU_BUILD,
                                               "torch is built for CUDA 13.0 but sees no GPU")
    assert R.choose_runtime("12.8", True)[0] == "onnxruntime-gpu>=1.19,<1.27"
    assert R.choose_runtime("13.0", True)[0] == "onnxruntime-gpu>=1.27"
    assert R.choose_runtime("10.2", True)[0] == R.CPU_BUILD


def test_odd_versions_and_which_build_to_keep():
    assert [R.gpu_build_cuda(v) for v in ("1", "1.x.0", "", "dev")] == [None] * 4
    assert R.several_runtimes_fix({"onnxruntime": "1.32.0", "onnxruntime-directml": "1.22.0"}) \
        == "pip uninstall -y onnxruntime onnxruntime-directml && pip install onnxruntime-directml"
