"""What the Comfy Registry's scanner flags: no subprocess, os.system/popen, eval, exec or
compile in any file the pack loads in ComfyUI (install.py and the CLI-only parts are not
loaded by the nodes). Method calls such as torch's `model.eval()` are not the builtins."""

from __future__ import annotations

import ast
from pathlib import Path

from comfy_harness import REPO
from schema_probe import probe

BUILTINS = {"eval", "exec", "compile", "__import__"}
MODULES = {"subprocess", "pty", "commands"}
OS_CALLS = {"system", "popen", "spawnl", "spawnv", "execv", "execl", "execvp"}


def flagged(path: Path) -> list[str]:
    tree, out = ast.parse(path.read_text(encoding="utf-8")), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            out += [f"{path.name}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in MODULES]
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in BUILTINS:
                out.append(f"{path.name}:{node.lineno} calls {f.id}()")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                    and f.value.id == "os" and f.attr in OS_CALLS:
                out.append(f"{path.name}:{node.lineno} calls os.{f.attr}()")
    return out


def test_nothing_the_nodes_load_runs_programs_or_code(comfy_root: Path):
    files = [Path(f) for f in probe(comfy_root, REPO)["modules"]]
    assert len(files) > 20 and all(REPO in f.parents for f in files)
    assert [hit for f in files for hit in flagged(f)] == []
    assert flagged(REPO / "install.py")  # the scan itself sees a subprocess where one is
