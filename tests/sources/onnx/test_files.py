"""Model files: local first, downloads through huggingface_hub from a real local HTTP server
(HF_ENDPOINT), offline/not-allowed errors, and never a second download of a present file."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers.models.onnx_models import build_cl, build_wd, cl_tags, wd_tags

from scoring.host import download
from scoring.sources import SourceError
from scoring.sources.onnx import files as models

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A tiny Hugging Face–style file server: /{repo}/resolve/{rev}/{path}."""

    def __init__(self, files: dict[str, bytes], gated: bool = False):
        self.files, self.gated, self.requests = files, gated, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self, body: bool):
                hub.requests.append((self.command, self.path))
                if hub.gated and "Bearer hf_good" not in self.headers.get("authorization", ""):
                    self.send_response(401)
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("X-Error-Message", "Access to this repo is restricted")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = self.path.split("?")[0].lstrip("/").split("/")
                key = "/".join(parts[:2]) + ":" + "/".join(parts[4:])
                data = hub.files.get(key)
                if data is None or parts[2] != "resolve":
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def wd_files(tmp_path):
    tags = wd_tags()
    d = build_wd(tmp_path / "src", tags, np.zeros((3, len(tags))), np.zeros(len(tags)), size=32)
    return {f"SmilingWolf/wd-vit-tagger-v3:{n}": (d / n).read_bytes()
            for n in ("model.onnx", "selected_tags.csv")}


@pytest.fixture
def hub_env(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hubs = []

    def start(files, gated=False):
        hub = Hub(files, gated)
        hubs.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        return hub

    yield start
    for h in hubs:
        h.close()


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
    download.download("SmilingWolf/wd-vit-tagger-v3", ("model.onnx", "selected_tags.csv"),
                    path.parent)
    assert all("model.onnx" not in p for _, p in hub.requests[n:])
    assert (path.parent / "selected_tags.csv").is_file()


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
