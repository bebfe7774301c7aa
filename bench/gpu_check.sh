#!/bin/sh
cd "$(dirname "$0")/.." && exec timeout 300 "${SAITEN_VENV:+$SAITEN_VENV/bin/}python3" bench/gpu_check.py "$@"
