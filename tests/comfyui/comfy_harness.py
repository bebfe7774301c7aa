"""A real, headless ComfyUI with this pack loaded, driven over its HTTP API.

`start_comfy()` launches `python main.py --cpu` with a throw-away base directory: its
`custom_nodes/` holds a symlink to this repository (plus the test-only nodes in
`testing_nodes/`), its `models/` is where tests put model files (every folder ComfyUI or the
pack registers resolves under it), and input/output/temp/user are fresh. `Comfy` wraps the
API: `run(prompt)` queues a prompt and waits for its history entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-Saiten"
TESTING_NODES = Path(__file__).resolve().parent / "testing_nodes"
DEFAULT_COMFYUI = Path("~/comfy/ComfyUI").expanduser()


def find_comfyui() -> tuple[Path | None, str]:
    """The ComfyUI checkout to test against ($COMFYUI_PATH when set, else
    ~/comfy/ComfyUI), or None and why not."""
    env = os.environ.get("COMFYUI_PATH")
    root = Path(env).expanduser() if env else DEFAULT_COMFYUI
    if (root / "main.py").is_file():
        return root, ""
    return None, (
        "no ComfyUI found: set COMFYUI_PATH to a ComfyUI checkout "
        f"(COMFYUI_PATH={env or '<unset>'}) or put one at {DEFAULT_COMFYUI} "
        "— the real-ComfyUI tests did NOT run"
    )


StartHook = Callable[[Path, dict[str, str]], None]
_START_HOOKS: list[StartHook] = []


def on_start(hook: StartHook) -> StartHook:
    """Register `hook(models_dir, env)` to run once before the session's ComfyUI starts:
    build model files under `models_dir/<folder>/`, set environment variables for the
    server process in `env`. Use it at module level in a test file (collection imports every
    test file before the first test starts the server)::

        @on_start
        def tiny_wd(models_dir, env):
            build_wd(models_dir / "saiten_tagger" / "tiny-wd")
            env["HF_HUB_OFFLINE"] = "1"

    Files placed under `comfy.models_dir` later also show up (node schemas are rebuilt
    for every /object_info; call `comfy.refresh_object_info()`).
    """
    if hook not in _START_HOOKS:
        _START_HOOKS.append(hook)
    return hook


def nudenet_tagger(images: list, scores: list | None = None) -> dict:
    """An API-format SaitenTagger node on the offline NudeNet model, every widget at its
    default; `images`/`scores` are links like ["1", 0]."""
    inputs = {"images": images, "model": "nudenet (offline)", "general_threshold": 0.0,
              "character_threshold": 0.0, "threshold_mode": "fixed", "batch_size": 8,
              "allow_download": False, "keep_loaded": True, "weight": 0.0, "label": ""}
    if scores is not None:
        inputs["scores"] = scores
    return {"class_type": "SaitenTagger", "inputs": inputs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyError(AssertionError):
    """ComfyUI refused a prompt or did not finish it; the message carries its reasons."""


@dataclass
class History:
    """One finished prompt as /history reports it."""

    prompt_id: str
    entry: dict[str, Any]
    comfy: Comfy = field(repr=False)

    @property
    def status(self) -> str:
        return self.entry.get("status", {}).get("status_str", "")

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def messages(self) -> list[tuple[str, dict]]:
        return [tuple(m) for m in self.entry.get("status", {}).get("messages", [])]

    def message(self, kind: str) -> dict | None:
        """The first status message of `kind` (e.g. "execution_error"), or None."""
        return next((d for k, d in self.messages if k == kind), None)

    @property
    def outputs(self) -> dict[str, dict]:
        return self.entry.get("outputs", {})

    def ui(self, node_id: str | int) -> dict:
        """What node `node_id` returned for the UI ({} when it did not run or was blocked)."""
        return self.outputs.get(str(node_id), {})

    def files(self, node_id: str | int | None = None, kind: str = "output") -> list[Path]:
        """Image files saved by `node_id` (every node when None) in the output (or temp) dir."""
        base = {"output": self.comfy.output_dir, "temp": self.comfy.temp_dir}[kind]
        nodes = [self.ui(node_id)] if node_id is not None else list(self.outputs.values())
        return [
            base / im.get("subfolder", "") / im["filename"]
            for ui in nodes for im in ui.get("images", []) if im.get("type") == kind
        ]

    def text(self, node_id: str | int) -> str:
        """The text a node showed (`ui.text`), joined."""
        return "\n".join(str(t) for t in self.ui(node_id).get("text", []))


class Comfy:
    """A running ComfyUI. Use the `comfy` fixture (tests/comfyui/conftest.py)."""

    def __init__(self, root: Path, base: Path, port: int, proc: subprocess.Popen, log: Path):
        self.root, self.base, self.port, self.proc, self.log_path = root, base, port, proc, log
        self.url = f"http://127.0.0.1:{port}"
        self.client_id = uuid.uuid4().hex
        self._object_info: dict | None = None

    # -- where things are --------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        """ComfyUI's models dir: `models_dir / <folder name> / <file>` is found by nodes."""
        return self.base / "models"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def temp_dir(self) -> Path:
        return self.base / "temp"

    @property
    def pack_dir(self) -> Path:
        return self.base / "custom_nodes" / PACK_NAME

    def log(self, tail: int = 8000) -> str:
        """The server's combined stdout/stderr so far (the last `tail` characters)."""
        return self.log_path.read_text(errors="replace")[-tail:]

    # -- HTTP --------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, {} if body is None else body, **kw)

    @property
    def object_info(self) -> dict[str, dict]:
        """/object_info (fetched once; call `refresh_object_info()` after adding models)."""
        if self._object_info is None:
            self._object_info = self.get("/object_info")
        return self._object_info

    def refresh_object_info(self) -> dict[str, dict]:
        self._object_info = None
        return self.object_info

    # -- prompts -----------------------------------------------------------------------
    def queue(self, prompt: dict, workflow: dict | None = None) -> str:
        """POST /prompt; returns the prompt id. A refused prompt raises ComfyError with
        ComfyUI's node errors."""
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if workflow is not None:  # what the frontend sends: lands in the PNG's "workflow"
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            return self.post("/prompt", body)["prompt_id"]
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise ComfyError(f"ComfyUI refused the prompt ({e.code}): {detail}") from None

    def wait(self, prompt_id: str, timeout: float = 120) -> History:
        """Poll /history until the prompt is finished (success, error or interrupted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None \
                    and entry["status"].get("status_str"):
                return History(prompt_id, entry, self)
            if self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited ({self.proc.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise ComfyError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()}")

    def run(self, prompt: dict, timeout: float = 120, *, check: bool = True,
            workflow: dict | None = None) -> History:
        """Queue `prompt`, wait for it, and (with `check`) fail loudly unless it succeeded."""
        h = self.wait(self.queue(prompt, workflow), timeout)
        if check and not h.ok:
            err = h.message("execution_error") or h.message("execution_interrupted") or {}
            raise ComfyError(
                f"prompt {h.status}: {err.get('node_type')} #{err.get('node_id')}: "
                f"{err.get('exception_type')}: {err.get('exception_message')}\n"
                f"{err.get('traceback') and ''.join(err['traceback'])}"
            )
        return h

    def running(self) -> bool:
        """Whether a prompt is executing now."""
        return bool(self.get("/queue").get("queue_running"))

    def watch(self) -> Events:
        """The server's websocket messages to this client (progress, executing, …), for
        timing things inside a run: `with comfy.watch() as ev: ...; ev.wait_for(pred)`."""
        return Events(self)

    def interrupt(self) -> None:
        self.post("/interrupt")

    def free(self, unload_models: bool = True, free_memory: bool = False) -> None:
        """What the "Free memory" / "Unload models" buttons do (handled between prompts)."""
        self.post("/free", {"unload_models": unload_models, "free_memory": free_memory})

    def free_until(self, done: Callable[[], Any], *, unload_models: bool = True,
                   free_memory: bool = False, timeout: float = 60) -> Any:
        """POST /free until `done()` is truthy (returned) or `timeout` passes (then its last
        falsy value). ComfyUI's prompt worker reads the flag when it wakes: a /free that
        lands while the worker is still finishing the last prompt (before it waits again)
        sleeps with it until the next wake-up, so ask again, as a user clicks again."""
        deadline = time.monotonic() + timeout
        while True:
            self.free(unload_models=unload_models, free_memory=free_memory)
            for _ in range(5):
                if got := done():
                    return got
                if time.monotonic() > deadline:
                    return got
                time.sleep(0.2)

    def workflow_prompt(self, workflow: dict | str | Path) -> tuple[dict, dict]:
        """A UI-format workflow (dict or JSON file) → (API prompt, the workflow dict)."""
        from comfy_workflow import to_prompt

        if not isinstance(workflow, dict):
            workflow = json.loads(Path(workflow).read_text(encoding="utf-8"))
        return to_prompt(workflow, self.object_info), workflow

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Events:
    """Websocket messages from ComfyUI to our client id, collected by a background thread."""

    def __init__(self, comfy: Comfy) -> None:
        self.url = f"ws://127.0.0.1:{comfy.port}/ws?clientId={comfy.client_id}"
        self.messages: queue.Queue[dict] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import aiohttp  # a ComfyUI dependency, so present wherever ComfyUI runs

        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.messages.put(json.loads(msg.data))
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break

    def __enter__(self) -> Events:
        self._thread.start()
        if not self._ready.wait(15):
            raise ComfyError(f"cannot open {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 60) -> dict:
        """The first message (`{"type", "data"}`) matching `predicate`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if predicate(msg):
                return msg
        raise ComfyError(f"no matching websocket message in {timeout}s")


_DIRECT = "SAITEN_TEST_DIRECT"  # the hooks' servers to reach without a proxy (never passed on)


def reach_directly(env: dict[str, str], *urls: str) -> None:
    """From a start hook: the server reaches these test servers directly, whatever proxy
    variables another hook sets (test_http_safety gives the server a proxy and an empty
    NO_PROXY). Only their host:port is exempted, so the pack's own rule — never a proxy for
    this machine — is still what keeps every other 127.0.0.1 server direct."""
    hosts = [urlsplit(u).netloc for u in urls]
    env[_DIRECT] = ",".join(x for x in (env.get(_DIRECT, ""), *hosts) if x)


def start_comfy(root: Path, base: Path, *, timeout: float = 180,
                extra_args: tuple[str, ...] = ()) -> Comfy:
    """Start ComfyUI from `root` with everything under `base` (a fresh directory)."""
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    if TESTING_NODES.is_dir() and not (base / "custom_nodes" / "saiten_testing_nodes").exists():
        (base / "custom_nodes" / "saiten_testing_nodes").symlink_to(TESTING_NODES)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    for hook in _START_HOOKS:
        hook(base / "models", env)
    if direct := env.pop(_DIRECT, ""):
        for name in ("NO_PROXY", "no_proxy"):
            env[name] = ",".join(x for x in (env.get(name, ""), direct) if x)
    port = free_port()
    log = base / "comfyui.log"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    cmd = [
        python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--disable-auto-launch", "--base-directory", str(base),
        "--output-directory", str(base / "output"), "--input-directory", str(base / "input"),
        "--user-directory", str(base / "user"),
        "--database-url", "sqlite:///:memory:", *extra_args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env)
    comfy = Comfy(root, base, port, proc, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ComfyError(f"ComfyUI exited at start-up ({proc.returncode}):\n{comfy.log()}")
        try:
            comfy.get("/object_info", timeout=10)
            return comfy
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if time.monotonic() > deadline:
                comfy.stop()
                raise ComfyError(f"ComfyUI did not answer in {timeout}s:\n{comfy.log()}") from None
            time.sleep(0.25)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
