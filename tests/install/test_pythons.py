"""Every Python ComfyUI supports besides the suite's own 3.11: 3.10 (ComfyUI 0.8's minimum,
the design's user) and 3.12/3.13 (the portable builds). Each gets a fresh venv, the user's
install (`pip install -r requirements.txt`, then `python install.py`), the offline demo, and
the torch-free part of the suite. torch, llama-cpp-python and ComfyUI tests stay on 3.11
(torch is on local disk for 3.11 only; llama-cpp-python builds from source for minutes).
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from venvs import REPO, RUNTIMES, dists, find_python, make_venv, need, pip, run, timed

VERSIONS = ("3.10", "3.12", "3.13")
NEEDS_311 = re.compile(
    r"^\s*(?:import|from) (?:torch|transformers|llama_cpp|comfy)\b"
    r"|importorskip\(\"(?:torch|transformers|llama_cpp)\""
    r"|models\.(?:tiny_hf|gguf_models)|find_comfyui|COMFYUI_PATH", re.MULTILINE)
"""A test file that uses torch, transformers, llama-cpp-python (a source build) or ComfyUI
stays on 3.11."""
TEST_ONLY = ("pytest>=8", "hypothesis>=6", "scikit-image>=0.22", "onnx>=1.16", "scipy",
             "opencv-python-headless", "aiohttp")
"""What the torch-free tests need beyond the user's install (requirements-test.txt's)."""


def nudenet_reason(py, out) -> str:
    """Why the NudeNet source abstained on a sample (the CLI's report), or "" if it scored."""
    run([py, "-m", "scoring", "score", "samples/astronaut.jpg", "--sources", "nudenet",
         "--min-sources", "1", "--out", out], cwd=REPO)
    row = json.loads((out / "report.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return row["cards"][0]["abstained"] or ""


def torch_free_tests() -> list[str]:
    """The test files (outside tests/comfyui and tests/install) that neither they nor a
    conftest.py above them need what stays on 3.11."""
    tests, out = REPO / "tests", []
    for p in sorted(tests.rglob("test_*.py")):
        rel = p.relative_to(tests)
        if rel.parts[0] in ("comfyui", "install"):
            continue
        chain = [p, *(d / "conftest.py" for d in p.parents if d != tests and tests in d.parents)]
        if not any(f.is_file() and NEEDS_311.search(f.read_text(encoding="utf-8"))
                   for f in chain):
            out.append(str(p.relative_to(REPO)))
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_install_demo_and_suite(version, tmp_path):
    if sys.version_info[:2] == tuple(map(int, version.split("."))):
        pytest.skip(f"the suite itself runs on {version}")
    python = find_python(version)
    need(python, f"no Python {version} found (python{version} on PATH or under pyenv)")
    py = make_venv(tmp_path / "venv", python)

    pip(py, "-r", str(REPO / "requirements.txt"))
    # before install.py the NudeNet source says exactly what to install (the Tagger node
    # shows the same message): first the model, then (model present) the runtime
    assert "pip install --no-deps nudenet" in nudenet_reason(py, tmp_path / "r1")
    pip(py, "--no-deps", "nudenet>=3.4.2")
    assert "pip install onnxruntime-gpu (CUDA) or onnxruntime" in nudenet_reason(
        py, tmp_path / "r2")
    with timed(f"install.py ({version})"):
        out = run([py, "install.py"], cwd=REPO)
    assert "onnxruntime>=" in out and "NudeNet model:" in out and "left as is" in out, out
    installed = dists(py)
    assert [d for d in RUNTIMES if d in installed] == ["onnxruntime"], out
    assert "nudenet" in installed and not [d for d in installed if d.startswith("opencv")]
    assert ("tomli" in installed) == (version == "3.10")

    demo = run([py, "-m", "scoring", "demo", "--out", tmp_path / "demo"], cwd=REPO)
    scored = re.search(r"(\d+) of (\d+) images scored with nudenet, technical", demo)
    assert scored and int(scored[1]) > 0, demo[-3000:]

    pip(py, *TEST_ONLY)
    # Without CI=true here: llama-cpp-python is built for the suite's 3.11 only, so its few
    # tests skip on this Python — and only those may (the same tests run under CI=true on 3.11).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    with timed(f"torch-free suite ({version})"):
        out = run([py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                   *torch_free_tests()], cwd=REPO, env=env, timeout=1800)
    assert re.search(r"\d+ passed", out) and " failed" not in out, out[-3000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert all("llama_cpp" in line for line in skips), "\n".join(skips)
