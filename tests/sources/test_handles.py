"""Loaded-model handles and a source's identity (`scoring.sources.handles`), on real sources
and real model files: one identity for the same build options however they are written, a
new one when a model file is replaced in place, the resume cache's view without what only
changes how a source runs; one shared handle per identity, run options refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.models.onnx_models import build_wd, wd_tags

from scoring.host.memory import MemoryPolicy
from scoring.sources import Source
from scoring.sources.handles import HOW_NOT_WHAT, Handles, identity


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    tags = wd_tags()
    folder = build_wd(tmp_path_factory.mktemp("wd") / "wd-tiny", tags, np.zeros((3, len(tags))),
                      np.zeros(len(tags)), size=16)
    return folder / "model.onnx"


def test_the_same_build_options_are_the_same_identity(model):
    one = identity("wd", {"model_path": model, "mcut": True})
    assert one.startswith("wd:") and len(one) == len("wd:") + 32
    assert identity("wd", {"mcut": True, "model_path": str(model)}) == one  # Path or str, any order
    assert identity("wd", {"model_path": model, "mcut": True, "general_threshold": 0.35}) == one
    # (0.35 is the spec's default: written or not, the same source)
    others = {identity("wd", {"model_path": model, "mcut": False}),
              identity("wd", {"model_path": model, "mcut": True, "general_threshold": 0.5}),
              identity("wd", {"model_path": model.parent / "other.onnx", "mcut": True}),
              identity("cl", {"model_path": model, "mcut": True})}
    assert one not in others and len(others) == 4


def test_a_model_file_replaced_in_place_is_a_new_identity(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x" * 100)
    before = identity("wd", {"model_path": path})
    assert identity("wd", {"model_path": path}) == before
    path.write_bytes(b"y" * 101)  # another size
    resized = identity("wd", {"model_path": path})
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same size, newer
    touched = identity("wd", {"model_path": path})
    assert len({before, resized, touched}) == 3


def test_results_only_leaves_out_how_a_source_runs(model):
    assert HOW_NOT_WHAT == {"batch_size", "device", "keep_loaded"}
    fast = {"model_path": model, "batch_size": 16, "device": "cuda:0", "keep_loaded": False}
    slow = {"model_path": model, "batch_size": 1, "device": "cpu"}
    assert identity("wd", fast) != identity("wd", slow)  # two handles: they run differently
    assert identity("wd", fast, results_only=True) == identity("wd", slow, results_only=True)
    assert identity("wd", {**slow, "mcut": True}, results_only=True) != \
        identity("wd", slow, results_only=True)  # what it says changed


def test_one_handle_per_build_options_and_run_options_go_with_the_call(model):
    policy = MemoryPolicy()
    handles = Handles(policy)
    wd = handles.get("wd", model_path=model, batch_size=2)
    assert isinstance(wd, Source) and wd.memory is policy and not wd.loaded
    assert handles.get("wd", batch_size=2, model_path=str(model)) is wd
    other = handles.get("wd", model_path=model, batch_size=4)
    nudenet = handles.get("nudenet")
    assert other is not wd and handles.get("nudenet") is nudenet
    assert list(handles) == [wd, other, nudenet]
    for run in ({"label": "mine"}, {"weight": 2.0}, {"keep_loaded": False}):
        with pytest.raises(TypeError, match=f"{next(iter(run))}: run options of wd go with"):
            handles.get("wd", model_path=model, **run)
    with pytest.raises(TypeError, match="method: run options of vlm-http"):
        handles.get("vlm-http", model="m", method="generate")
    assert list(handles) == [wd, other, nudenet]  # nothing made for a refused call
