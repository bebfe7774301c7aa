"""Tagger model files (`scoring.sources.onnx.files`): local first (folders and flat pairs),
downloads through huggingface_hub from a real local HTTP server (HF_ENDPOINT,
tests/helpers/hub.py), offline/not-allowed errors, and never a second download of a present
file."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, build_wd, cl_tags, wd_tags

from scoring.host import download
from scoring.sources import SourceError
from scoring.sources.onnx import files as models


@pytest.fixture
def wd_files(tmp_path):
    tags = wd_tags()
    d = build_wd(tmp_path / "src", tags, np.zeros((3, len(tags))), np.zeros(len(tags)), size=32)
    return {f"SmilingWolf/wd-vit-tagger-v3:{n}": (d / n).read_bytes()
            for n in ("model.onnx", "selected_tags.csv")}


def test_local_first_finds_folders_and_flat_pairs(tmp_path):
    tags = wd_tags()
    z = (np.zeros((3, len(tags))), np.zeros(len(tags)))
    a, b = tmp_path / "a", tmp_path / "b"
    build_wd(a / "wd-vit-tagger-v3", tags, *z, size=16)
    build_wd(b / "wd-vit-tagger-v3", tags, *z, size=16)
    ctags = cl_tags()
    build_cl(b / "cl_tagger_v2" / "v2_00", ctags, np.zeros((3, len(ctags))),
             np.zeros(len(ctags)), size=16)
    (b / "old.onnx").write_bytes(b"x")
    (b / "old.csv").write_text("tag_id,name,category,count\n")
    (b / "stray.onnx").write_bytes(b"x")                      # no labels: not a model
    assert models.find_model("SmilingWolf/wd-vit-tagger-v3", [a, b]) == \
        a / "wd-vit-tagger-v3" / "model.onnx"
    assert models.find_model("cl_tagger_v2", [a, b]) == b / "cl_tagger_v2/v2_00/model.onnx"
    assert models.find_model("old", [a, b]) == b / "old.onnx"
    assert models.find_model("missing", [a, b]) is None
    found = models.list_models([a, b])
    assert found == {"wd-vit-tagger-v3": a / "wd-vit-tagger-v3" / "model.onnx",
                     "cl_tagger_v2/v2_00": b / "cl_tagger_v2/v2_00/model.onnx",
                     "old": b / "old.onnx"}
    assert models.kind_of(found["cl_tagger_v2/v2_00"]) == "cl"
    assert models.kind_of(found["old"]) == "wd"


def test_not_allowed_and_offline_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(SourceError, match=r"put model\.onnx and selected_tags\.csv in") as e:
        models.resolve("wd-vit-tagger-v3", [tmp_path], allow_download=False)
    assert str(tmp_path / "wd-vit-tagger-v3") in str(e.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="offline"):
        models.resolve("wd-vit-tagger-v3", [tmp_path], allow_download=True)
    with pytest.raises(SourceError, match="not found"):
        models.resolve("someone-elses-model", [tmp_path], allow_download=True)


def test_download_from_local_hub_once_with_progress(tmp_path, hub_env, wd_files):
    hub = hub_env(wd_files)
    seen = []
    path = models.resolve("wd-vit-tagger-v3", [tmp_path], allow_download=True,
                          progress=lambda *a: seen.append(a))
    assert path == tmp_path / "wd-vit-tagger-v3" / "model.onnx"
    assert path.read_bytes() == wd_files["SmilingWolf/wd-vit-tagger-v3:model.onnx"]
    assert {s[0] for s in seen} == {"model.onnx", "selected_tags.csv"}
    assert seen[-1][1] == seen[-1][2] == len(wd_files[
        "SmilingWolf/wd-vit-tagger-v3:selected_tags.csv"])
    n = len(hub.requests)
    assert n >= 2
    again = models.resolve("wd-vit-tagger-v3", [tmp_path], allow_download=True)
    assert again == path and len(hub.requests) == n                 # no request at all
    (path.parent / "selected_tags.csv").unlink()                     # only the missing one
    download.fetch(download.hub_files("SmilingWolf/wd-vit-tagger-v3",
                                      ("model.onnx", "selected_tags.csv")),
                   path.parent, allow=True)
    assert all("model.onnx" not in p for _, p, _ in hub.requests[n:])
    assert (path.parent / "selected_tags.csv").is_file()
