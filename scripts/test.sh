#!/usr/bin/env bash
# The whole test suite on real parts: lint, then pytest (ComfyUI tests need a ComfyUI at
# $COMFYUI_PATH or ~/comfy/ComfyUI and skip loudly without one). Extra args go to pytest.
source "$(dirname "$0")/_venv.sh"
# torch is pinned for the test environment only (ComfyUI owns it in real installs).
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1
# The pack itself as a user gets it (requirements.txt, then install.py), then the test tools.
"${PIP[@]}" -r requirements.txt
"$PY" install.py
"${PIP[@]}" -r requirements-test.txt
# Built from the sdist once per machine (4–5 min on 2 cores); pip's wheel cache keeps it.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${PIP[@]}" "llama-cpp-python[server]==0.3.36"
"$PY" -m ruff check .
"$PY" -m pytest "$@"
