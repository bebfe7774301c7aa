"""Fixtures for the real-ComfyUI tests (every test file in tests/comfyui/).

    from comfy_harness import on_start

    @on_start                                # once, before the server starts
    def models(models_dir, env):             # models_dir = ComfyUI's models folder
        build_tiny_model(models_dir / "saiten_tagger" / "tiny")
        env["HF_HUB_OFFLINE"] = "1"          # the server's environment

    def test_x(comfy):                       # a ComfyUI started once per session
        info = comfy.object_info["SaitenTagger"]
        h = comfy.run({"1": {"class_type": ..., "inputs": {...}}})   # API prompt
        assert h.ok and h.files("5") and "score" in h.text("3")
        prompt, workflow = comfy.workflow_prompt("example_workflows/x.json")  # UI format

`h.status`, `h.message("execution_error")`, `h.ui(node)`, `comfy.interrupt()`,
`comfy.free()`, `comfy.watch()` (websocket progress), `comfy.log()` (the server's output)
— see comfy_harness.py. ComfyUI caches nodes whose inputs did not change and reports no UI
output for them: vary an input. SAITEN_KEEP_COMFY_DIR=1 keeps the server's base directory.

`page`: ComfyUI's frontend in headless Chromium (cdp.Browser: `page.evaluate(js)`).
`aesthetic_hub`: the fake Hugging Face hub (helpers/hub.py) every session's ComfyUI downloads
from (HF_ENDPOINT, an empty HF_HOME): deepghs/anime_aesthetic's default model as a stand-in in
the repository's layout (redder = better, bluer = worse), so the templates with downloads on
run here.
`sd15` (a real KSampler): the random-weight SD1.5-shaped checkpoint of sd15_checkpoint.py,
built once per machine into $SAITEN_TEST_CACHE (~/.cache/saiten-tests) and linked into the
session ComfyUI's `checkpoints` folder; the fixture's value is its `ckpt_name`.

Where no ComfyUI is found ($COMFYUI_PATH, else ~/comfy/ComfyUI) every test using `comfy`
skips, and the terminal summary says so loudly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from cdp import Browser, find_chromium
from comfy_harness import Comfy, find_comfyui, on_start, reach_directly, start_comfy
from helpers.hub import FakeHub
from helpers.models.aesthetic_models import build_anime_aesthetic
from sd15_checkpoint import checkpoint

from scoring.sources.onnx.aesthetic import DEFAULT_MODEL
from scoring.sources.onnx.aesthetic import REPO as AESTHETIC_REPO

_SKIPPED: list[str] = []


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.comfyui)


@pytest.fixture(scope="session")
def comfy_root() -> Path:
    """The ComfyUI checkout under test (skips loudly when there is none)."""
    root, why = find_comfyui()
    if root is None:
        if why not in _SKIPPED:
            _SKIPPED.append(why)
        pytest.skip(why)
    return root


_HUBS: dict[Path, FakeHub] = {}  # by the server's models folder (test_cuda_server starts one)


@on_start
def aesthetic_hub_for_the_server(models_dir: Path, env: dict[str, str]) -> None:
    folder = build_anime_aesthetic(models_dir.parent / "hub-src" / DEFAULT_MODEL)
    hub = FakeHub({AESTHETIC_REPO: {f"{DEFAULT_MODEL}/{p.name}": p.read_bytes()
                                    for p in folder.iterdir()}}, lfs_from=4096)
    _HUBS[models_dir] = hub
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(models_dir.parent / "hf-home"))
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    reach_directly(env, hub.url, hub.cdn.url)


@pytest.fixture(scope="session")
def aesthetic_hub(comfy: Comfy) -> FakeHub:
    """The fake hub the session's ComfyUI downloads from."""
    return _HUBS[comfy.models_dir]


@pytest.fixture(scope="session")
def comfy(comfy_root: Path):
    """A headless ComfyUI (CPU) with this pack loaded, shared by the whole session."""
    keep = os.environ.get("SAITEN_KEEP_COMFY_DIR")
    base = Path(tempfile.mkdtemp(prefix="saiten-comfy-"))
    server: Comfy = start_comfy(comfy_root, base)
    try:
        yield server
    finally:
        server.stop()
        if not keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def page(comfy: Comfy):
    """ComfyUI's real frontend in headless Chromium (skips without a Chromium); one per test
    module (an open ComfyUI page keeps drawing: closed when the module is done)."""
    chromium = find_chromium()
    if not chromium:
        pytest.skip("no Chromium found (CHROMIUM_PATH or PATH): frontend test did not run")
    browser = Browser(chromium)
    try:
        browser.goto(comfy.url)
        browser.wait_for("!!(window.app && window.app.graph && window.app.graph.nodes)", 90)
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def sd15(comfy: Comfy, comfy_root: Path) -> str:
    """`ckpt_name` of the random-weight SD1.5 checkpoint in the session ComfyUI."""
    built = checkpoint(comfy_root)
    link = comfy.models_dir / "checkpoints" / built.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(built)
    assert built.name in comfy.refresh_object_info()["CheckpointLoaderSimple"][
        "input"]["required"]["ckpt_name"][0], "the checkpoint is not listed"
    return built.name


def pytest_terminal_summary(terminalreporter):
    for why in _SKIPPED:
        terminalreporter.write_sep("!", "ComfyUI tests SKIPPED", red=True, bold=True)
        terminalreporter.write_line(why, red=True, bold=True)
