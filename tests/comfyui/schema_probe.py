"""Print every node's live schema, and the files of every pack module loaded with them, as
JSON: `python schema_probe.py <ComfyUI root> <repo>`. What the locale and help-page tests
check their files against (the node classes themselves, so a new input shows up here the
moment it is added), and what the Registry's scanner reads."""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path

from probe_boot import boot


def schemas() -> dict[str, dict]:
    nodes = importlib.import_module("saiten_pack.nodes").all_nodes()
    out = {}
    for cls in nodes:
        s = cls.define_schema()
        out[s.node_id] = {
            "display_name": s.display_name or s.node_id,
            "description": s.description or "",
            "inputs": {i.id: i.tooltip or "" for i in s.inputs},
            "outputs": [{"name": o.display_name or o.id, "tooltip": o.tooltip or ""}
                        for o in s.outputs],
        }
    return out


def module_files() -> list[str]:
    """Every file of the pack that importing it (and building the schemas) loaded."""
    return sorted({m.__file__ for name, m in list(sys.modules.items())
                   if name.split(".")[0] == "saiten_pack" and getattr(m, "__file__", None)})


def load_schemas(comfy_root: Path, repo: Path) -> dict[str, dict]:
    return probe(comfy_root, repo)["schemas"]


@functools.cache
def probe(comfy_root: Path, repo: Path) -> dict[str, dict]:
    """{"schemas", "modules"} from a subprocess that boots ComfyUI and the pack (cached per
    session)."""
    out = subprocess.run([sys.executable, __file__, str(comfy_root), str(repo)],
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("SCHEMAS ")), None)
    assert line, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(line.removeprefix("SCHEMAS "))


if __name__ == "__main__":
    boot(Path(sys.argv[1]), Path(sys.argv[2]))
    found = schemas()
    print("SCHEMAS " + json.dumps({"schemas": found, "modules": module_files()},
                                  ensure_ascii=False))
