"""`python fake_cuda_main.py main.py --cpu <ComfyUI options>`: ComfyUI's main.py on a FakeGpu.

Drops `--cpu` (the harness always passes it), installs the fake card, then runs main.py as
`python main.py` would: ComfyUI starts on its CUDA branch, device cuda:0."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fake_cuda import FakeGpu

script, *options = sys.argv[1:]
sys.argv = [script, *[o for o in options if o != "--cpu"]]
sys.path.insert(0, str(Path(script).resolve().parent))
FakeGpu().install()
runpy.run_path(script, run_name="__main__")
