#!/usr/bin/env bash
# Score the embedded sample images with the offline default (NudeNet + technical check).
# Prints a table and writes report.jsonl / report.csv / report.html into ./saiten-demo.
source "$(dirname "$0")/_venv.sh"
# Installed the way ComfyUI-Manager does it: requirements.txt, then install.py (an ONNX Runtime
# only if none is there, NudeNet's model without its dependencies).
"${PIP[@]}" -r requirements.txt
"$PY" install.py
exec "$PY" -m scoring demo --out "${1:-saiten-demo}"
