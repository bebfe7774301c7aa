"""A tiny Hugging Face–style file server on 127.0.0.1 for the download tests: `hub_env(files,
gated=False)` starts one and points HF_ENDPOINT at it (HF_HUB_OFFLINE and HF_TOKEN cleared).
Use with `pytest_plugins = ["helpers.hub"]`."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
