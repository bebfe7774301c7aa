"""The install tests (tests/install/): real pip, real ComfyUI-Manager, fresh venvs. They take
minutes; `pytest -m "not install"` leaves them out while iterating."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))  # comfy_harness

from venvs import TIMINGS


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.install)
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "install tests: seconds per step")
        for step, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{step:<40} {seconds:7.1f}")
