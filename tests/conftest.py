"""Suite-wide rule: under CI=true nothing may skip. A test (or a whole module) that would skip
because something is missing — no ComfyUI, no Chromium, no llama-cpp-python — fails instead,
with the skip's own reason naming what was missing. Outside CI skips stay skips (and the
ComfyUI ones are announced loudly by tests/comfyui/conftest.py)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["helpers.hub"]  # fake_hub, hub_env: a fake Hugging Face hub on 127.0.0.1


def in_ci() -> bool:
    """CI=true (or 1/yes), as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip(rep) -> None:
    if not (in_ci() and rep.skipped and not hasattr(rep, "wasxfail")):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = f"CI=true: this must run here, but it would skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
