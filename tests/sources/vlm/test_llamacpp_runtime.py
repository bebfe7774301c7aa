"""llama-cpp-python as the llama.cpp backend imports it (`scoring.sources.vlm.llamacpp_runtime`):
in a fresh Python where importing it (or its vision bindings) really fails, the source
abstains with the pip command to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scoring.sources.vlm.llamacpp_runtime import INSTALL_HINT, MIN_VERSION

pytest_plugins = ["helpers.models.gguf_models"]  # the session fixture `gguf_models`

REPO = Path(__file__).resolve().parents[3]
try:
    import llama_cpp  # noqa: F401
    HAVE_LLAMA_CPP = True
except ImportError:
    HAVE_LLAMA_CPP = False


BLOCK_IMPORT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ImportError(f"No module named {{name!r}} (hidden by the test)")
sys.meta_path.insert(0, Block())
"""


def score_without(blocked: str, models, tmp_path) -> list[str]:
    """Abstention reasons from scoring two images in a fresh Python where importing
    `blocked` really fails."""
    script = BLOCK_IMPORT.format(blocked=blocked) + f"""
import json
import numpy as np
from scoring.sources import create
src = create("vlm-llamacpp", model_path={str(models.llava_text)!r},
             mmproj_path={str(models.llava_mmproj)!r})
sheet = src.score([np.zeros((32, 32, 3), np.float32)] * 2)
print(json.dumps([c[0].abstained for c in sheet]))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_missing_llama_cpp_abstains_with_the_pip_command(gguf_models, tmp_path):
    assert score_without("llama_cpp", gguf_models, tmp_path) == [INSTALL_HINT, INSTALL_HINT]


@pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="llama-cpp-python is not installed")
def test_llama_cpp_without_vision_support_says_to_upgrade(gguf_models, tmp_path):
    reasons = score_without("llama_cpp.mtmd_cpp", gguf_models, tmp_path)
    assert len(reasons) == 2
    assert "too old for vision GGUFs" in reasons[0]
    assert f'pip install -U "llama-cpp-python>={MIN_VERSION}"' in reasons[0]
