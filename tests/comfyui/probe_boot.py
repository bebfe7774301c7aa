"""Start-up shared by the probes that run in a subprocess: import ComfyUI on the CPU, then
the pack as ComfyUI loads a custom node (under a package name, relative imports intact)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def boot(comfy_root: Path, repo: Path) -> ModuleType:
    """ComfyUI importable with `args.cpu` set, and the pack imported as `saiten_pack`."""
    sys.path.insert(0, str(comfy_root))
    from comfy.cli_args import args

    args.cpu = True  # before comfy.model_management is first imported
    import comfy.model_management  # noqa: F401

    spec = importlib.util.spec_from_file_location(
        "saiten_pack", repo / "__init__.py", submodule_search_locations=[str(repo)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["saiten_pack"] = pack
    spec.loader.exec_module(pack)
    return pack
