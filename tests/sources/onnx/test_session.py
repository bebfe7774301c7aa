"""The ONNX session cache on real onnxruntime with tiny models built here."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, build_wd, cl_tags, save_truncated, wd_tags

from scoring.host.memory import MemoryPolicy
from scoring.sources import SourceError
from scoring.sources.onnx import session as onnx_session


class Recorder(MemoryPolicy):
    """A host that records what sources ask of it (and pretends to be a CPU host)."""

    def __init__(self):
        self.events = []

    def reserve(self, nbytes, device):
        self.events.append(("reserve", nbytes, device))
        return None

    def loaded(self, model, nbytes, device):
        self.events.append(("loaded", model.name, nbytes, device))

    def released(self, model):
        self.events.append(("released", model.name))


@pytest.fixture(scope="module")
def wd_dir(tmp_path_factory):
    tags = wd_tags()
    return build_wd(tmp_path_factory.mktemp("wd") / "m", tags, np.zeros((3, len(tags))),
                    np.zeros(len(tags)))


def test_open_reports_provider_and_reuses_session(wd_dir):
    mem = Recorder()
    a = onnx_session.open_model(wd_dir / "model.onnx", device="cpu", memory=mem)
    b = onnx_session.open_model(wd_dir / "model.onnx", device="cpu", memory=mem)
    assert a is b and a.provider == "CPUExecutionProvider" and "on CPU" in a.describe()
    assert [e[0] for e in mem.events] == ["loaded"]           # CPU: nothing to reserve
    assert mem.events[0][3] == "cpu" and mem.events[0][2] > (wd_dir / "model.onnx").stat().st_size
    a.unload()
    assert a.closed and mem.events[-1][0] == "released"
    a.unload()                                                 # idempotent
    assert [e[0] for e in mem.events] == ["loaded", "released"]


def test_auto_device_without_cuda_is_cpu():
    assert onnx_session.pick_device("auto", MemoryPolicy()) == "cpu"
    assert onnx_session.providers_for("cuda:0") == ["CPUExecutionProvider"]  # no CUDA here


def test_missing_truncated_and_external_data_errors(tmp_path):
    with pytest.raises(SourceError, match="model file not found"):
        onnx_session.open_model(tmp_path / "nope.onnx")
    tags = cl_tags()
    cl = build_cl(tmp_path / "cl", tags, np.zeros((3, len(tags))), np.zeros(len(tags)))
    bad = save_truncated(cl / "model.onnx", tmp_path / "t" / "model.onnx")
    with pytest.raises(SourceError, match="truncated or corrupt") as e:
        onnx_session.open_model(bad)
    assert "model.onnx" in str(e.value)
    (cl / "model.onnx.data").unlink()
    with pytest.raises(SourceError, match=r"model\.onnx\.data"):
        onnx_session.open_model(cl / "model.onnx")


def test_fixed_batch_of_one_runs_in_chunks_of_one(tmp_path):
    tags = wd_tags()
    d = build_wd(tmp_path / "fixed", tags, np.eye(3, len(tags)), np.zeros(len(tags)), batch=1,
                 size=32)
    m = onnx_session.open_model(d / "model.onnx", device="cpu")
    assert m.fixed_batch == 1
    assert [list(r) for r in m.chunks(3, 8)] == [[0], [1], [2]]
    m.require_input("input", (None, 32, 32, 3))
    with pytest.raises(SourceError, match="does not match"):
        m.require_input("pixel_values", (None, 3, 384, 384))
    out = m.run(np.full((1, 32, 32, 3), 255.0, np.float32))[0]
    assert out.shape == (1, len(tags)) and out[0, 0] == pytest.approx(1 / (1 + np.exp(-1)))
    m.unload()


def test_dynamic_batch_chunks(wd_dir):
    m = onnx_session.open_model(wd_dir / "model.onnx", device="cpu")
    assert m.fixed_batch is None
    assert [len(r) for r in m.chunks(10, 4)] == [4, 4, 2]
    m.unload()


def test_install_check_is_quiet_with_one_package():
    assert onnx_session.check_install() is None


def test_auto_device_follows_the_host_policy():
    class Host(MemoryPolicy):
        def device(self):
            return "cpu"

    assert onnx_session.pick_device("auto", Host()) == "cpu"
    assert onnx_session.pick_device("cuda:1", Host()) == "cuda:1"
