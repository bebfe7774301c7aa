"""Fixtures of the HTTP tests: the fault-injecting fake server, a recognisable fake key, and
a real `llama_cpp.server` on 127.0.0.1. Use with `pytest_plugins = ["helpers.fixtures_http"]`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.fakeapi import FAKE_KEY, FakeAPI


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeAPI]:
    server = FakeAPI()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fakeapi(fake_server: FakeAPI) -> FakeAPI:
    """The fake server with an empty record and plain ok answers (and, in this process, no
    circuit breaker remembering earlier tests' failures)."""
    from scoring.remote import breaker

    breaker.reset()
    fake_server.script()
    return fake_server


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` in a subprocess, stopped by its PID."""

    def __init__(self, model: Path, *extra: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start within 60 s")

    def tokenize(self, text: str) -> list[int]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/extras/tokenize",
            data=json.dumps({"input": text, "add_special": False}).encode(),
            headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())["tokens"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def llama_server_missing() -> str | None:
    """Why `llama_cpp.server` cannot run here, or None."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as e:
        return (f"llama_cpp.server unavailable ({e}): pip install "
                "'llama-cpp-python[server]' (fastapi, uvicorn, sse-starlette, starlette-context)")
    return None


@pytest.fixture(scope="session")
def gguf_models(tmp_path_factory):
    """The tiny GGUF models of tests/helpers/models/gguf_models.py (skips when
    llama_cpp.server or the builder is missing)."""
    missing = llama_server_missing()
    if missing:
        pytest.skip(missing)
    builder = pytest.importorskip("helpers.models.gguf_models",
                                  reason="tests/helpers/models/gguf_models.py is missing")
    return builder.build_gguf_models(tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="session")
def llama_vlm_server(gguf_models, tmp_path_factory) -> Iterator[LlamaServer]:
    """llama_cpp.server with the tiny LLaVA text model and its mmproj (images work)."""
    server = LlamaServer(gguf_models.llava_text, "--clip_model_path",
                         str(gguf_models.llava_mmproj), "--chat_format", "llava-1-5",
                         log=tmp_path_factory.mktemp("llama") / "vlm_server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_text_server(gguf_models, tmp_path_factory) -> Iterator[LlamaServer]:
    """llama_cpp.server with the tiny text model alone (a local judge)."""
    server = LlamaServer(gguf_models.llava_text, "--chat_format", "chatml",
                         log=tmp_path_factory.mktemp("llama") / "text_server.log")
    yield server
    server.stop()
