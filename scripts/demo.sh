#!/usr/bin/env bash
# Score the embedded sample images with the offline default (NudeNet + technical check).
# Prints a table and writes report.jsonl / report.csv / report.html into ./saiten-demo.
source "$(dirname "$0")/_venv.sh"
"${PIP[@]}" -r requirements.txt
exec "$PY" -m scoring demo --out "${1:-saiten-demo}"
