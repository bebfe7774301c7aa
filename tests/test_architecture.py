"""The house rules the code keeps (issue L): scoring/ never imports ComfyUI, no import cycle
(not even through an import inside a function), modules of a readable size, folders whose
top a reader takes in at a glance."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

MAX_LINES = 400
MAX_ENTRIES = 12
COMFY = ("comfy", "comfy_api", "comfy_execution", "folder_paths", "server", "execution")


def modules(package: str) -> dict[str, Path]:
    out = {}
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that `name` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)] \
                if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_engine_never_imports_comfyui():
    for name, path in modules("scoring").items():
        top = {m.split(".")[0] for m in imports(name, path, {})}
        assert not top & set(COMFY), f"{name} imports {sorted(top & set(COMFY))}"


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, or None."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n):], n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_no_import_cycle():
    known = modules("scoring")
    graph = {m: imports(m, p, known) & set(known) - {m} for m, p in known.items()}
    assert cycle(graph) is None, " → ".join(cycle(graph) or [])
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # it finds one


def test_modules_stay_readable():
    for package in ("scoring", "nodes"):
        for path in (REPO / package).rglob("*.py"):
            n = len(path.read_text(encoding="utf-8").splitlines())
            assert n <= MAX_LINES, f"{path.relative_to(REPO)}: {n} lines"


def test_folder_tops_are_taken_in_at_a_glance():
    for package in ("scoring", "nodes"):
        for folder in [REPO / package, *(REPO / package).rglob("*/")]:
            if folder.name == "__pycache__" or not (folder / "__init__.py").exists():
                continue
            entries = [p for p in folder.iterdir() if p.name != "__pycache__"]
            assert len(entries) <= MAX_ENTRIES, f"{folder.relative_to(REPO)}: {len(entries)}"
