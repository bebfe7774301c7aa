"""Fresh virtual environments and the pack served over HTTP, for the install tests.

Every venv is made without `--system-site-packages` and gets only what its check needs;
pip's cache makes the second run cheap. `need()` skips with the reason, except under CI=true
where a missing part fails the test (a test that silently did not run proves nothing).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACK = "ComfyUI-Saiten"
RUNTIMES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
TIMINGS: dict[str, float] = {}
"""Seconds per named step, printed at the end of the session (tests/install/conftest.py)."""


def need(ok: object, why: str) -> None:
    """Skip the test when `ok` is false, saying `why`; under CI=true fail instead."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[step] = TIMINGS.get(step, 0.0) + time.monotonic() - t0


def run(cmd: Sequence[str | Path], *, cwd: Path | None = None, env: dict | None = None,
        timeout: float = 900) -> str:
    """Run `cmd`; its stdout+stderr, or an assertion error that shows them."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n" \
        + out[-6000:]
    return out


def find_python(version: str) -> Path | None:
    """An interpreter for `version` ("3.10"): python3.10 on PATH, else pyenv's newest."""
    exe = shutil.which(f"python{version}")
    if exe and _is(Path(exe), version):
        return Path(exe)
    root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
    for d in sorted(root.glob(f"{version}.*"), reverse=True):
        exe = d / "bin" / "python3"
        if _is(exe, version):
            return exe
    return None


def _is(exe: Path, version: str) -> bool:
    try:
        out = subprocess.run([str(exe), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def make_venv(path: Path, python: Path | str = sys.executable) -> Path:
    """A new venv at `path` (pip only); returns its Python."""
    with timed("venv"):
        run([python, "-m", "venv", path])
    return path / "bin" / "python"


def pip(py: Path, *args: str, timeout: float = 900) -> str:
    with timed("pip"):
        return run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                   timeout=timeout)


def dists(py: Path) -> dict[str, str]:
    """{normalised distribution name: version} installed in `py`'s environment."""
    code = ("import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', "
            "d.metadata['Name']).lower(): d.version for d in m.distributions()}))")
    return json.loads(run([py, "-c", code]).strip().splitlines()[-1])


def export_pack(dest: Path) -> Path:
    """The working tree as `comfy node publish` and git see it (tracked + untracked files
    not ignored), committed into a new repository at `dest`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.email=test@saiten", "-c", "user.name=test"]
    run([*git, "init", "-q"], cwd=dest)
    run([*git, "add", "-A"], cwd=dest)
    run([*git, "commit", "-qm", "pack under test"], cwd=dest)
    return dest


@contextlib.contextmanager
def serve_pack(tmp: Path) -> Iterator[str]:
    """A bare clone of the working tree served over dumb HTTP on 127.0.0.1; yields its URL
    (ComfyUI-Manager refuses file:// URLs)."""
    work = export_pack(tmp / "src")
    root = tmp / "http"
    root.mkdir()
    bare = root / f"{PACK}.git"
    run(["git", "clone", "-q", "--bare", work, bare])
    run(["git", "update-server-info"], cwd=bare)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{PACK}.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def fresh_comfyui(dest: Path) -> Path | None:
    """A copy of the ComfyUI under test ($COMFYUI_PATH, else ~/comfy/ComfyUI) with empty
    custom_nodes/models/user folders, or None when there is none."""
    env = os.environ.get("COMFYUI_PATH")
    root = Path(env).expanduser() if env else Path("~/comfy/ComfyUI").expanduser()
    if not (root / "main.py").is_file():
        return None
    top = {"custom_nodes", "models", "output", "input", "temp", "user", ".git"}

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = top if Path(folder) == root else set()
        return [n for n in names if n in here or n == "__pycache__"]

    shutil.copytree(root, dest, ignore=ignore)
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (dest / sub).mkdir(exist_ok=True)
    return dest


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@contextlib.contextmanager
def borrowed_packages(py: Path, exclude: Sequence[str]) -> Iterator[None]:
    """While inside, `py` also sees this suite's own site-packages (torch, ComfyUI's
    packages), minus the distributions named in `exclude`, AFTER its own (a folder of
    symlinks listed in a .pth file): a ComfyUI can start on `py` without a 5 GB torch install,
    and what `py` has installed still wins."""
    src = Path(sysconfig.get_paths()["purelib"])
    skip = set()
    for dist in importlib.metadata.distributions(path=[str(src)]):
        if norm(dist.metadata["Name"]) in exclude:
            skip |= {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}
    layer = py.parent.parent / "borrowed"
    layer.mkdir(exist_ok=True)
    for entry in src.iterdir():
        if entry.name not in skip and entry.suffix != ".pth" and entry.name != "__pycache__":
            (layer / entry.name).symlink_to(entry)
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .strip())
    pth = site / "zz_saiten_borrowed.pth"
    pth.write_text(f"{layer}\n", encoding="utf-8")
    try:
        yield
    finally:
        pth.unlink()
        shutil.rmtree(layer)
