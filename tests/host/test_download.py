"""Model files from a Hugging Face–style hub (`scoring.host.download`) on a real local HTTP
server (tests/helpers/hub.py): a repository sub-folder's files land side by side in the
destination, and a gated repository needs HF_TOKEN."""

from __future__ import annotations

import pytest

from scoring.host import download
from scoring.sources import SourceError

pytest_plugins = ["helpers.hub"]  # hub_env: a fake Hugging Face hub on 127.0.0.1


def test_subfolder_files_land_next_to_each_other(tmp_path, hub_env):
    hub_env({"cella110n/cl_tagger_v2:v2_00/a.json": b"{}", "cella110n/cl_tagger_v2:v2_00/b": b"1"})
    dest = download.download("cella110n/cl_tagger_v2", ("a.json", "b"), tmp_path / "cl",
                           subfolder="v2_00")
    assert (dest / "a.json").read_bytes() == b"{}" and (dest / "b").read_bytes() == b"1"


def test_gated_repo_needs_hf_token(tmp_path, hub_env, monkeypatch):
    hub = hub_env({"cella110n/cl_tagger_v2:v2_00/model.onnx": b"onnx"}, gated=True)
    with pytest.raises(SourceError, match="HF_TOKEN"):
        download.download("cella110n/cl_tagger_v2", ("model.onnx",), tmp_path / "cl",
                        subfolder="v2_00")
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    download.download("cella110n/cl_tagger_v2", ("model.onnx",), tmp_path / "cl",
                    subfolder="v2_00")
    assert (tmp_path / "cl" / "model.onnx").read_bytes() == b"onnx"
    assert hub.requests
