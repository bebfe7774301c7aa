"""Model folders of the one-folder-per-model sources (censor, likeness): `<dir>/<name>/`
holding the files the source's `Spec` lists for that model (the first is the one it opens).
A known model missing from every folder is fetched into the first one when the user allowed
it, through the one download path every family uses (`sources.known`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...core.errors import SourceError
from ..known import known
from ..spec import Model, Spec


def main_file(spec: Spec) -> str:
    """The file a model of this spec is opened by (the first its models list)."""
    return spec.models[0].files[0]


def local(spec: Spec, dirs: Iterable[str | Path]) -> dict[str, Path]:
    """{folder name: main file} for every model folder under `dirs` (first dir wins)."""
    found: dict[str, Path] = {}
    name = main_file(spec)
    for d in dirs:
        root = Path(d)
        if root.is_dir():
            for path in sorted(root.glob(f"*/{name}")):
                found.setdefault(path.parent.name, path)
    return found


def choices(spec: Spec, dirs: Iterable[str | Path]) -> list[str]:
    """The spec's default model first, then local folders, then known downloadable ones."""
    have = local(spec, dirs)
    default = spec.facts.get("default_model", spec.models[0].match)
    known = [m.match for m in spec.models]
    return list(dict.fromkeys([default, *sorted(have), *known]))


def resolve(spec: Spec, name: str, dirs: Sequence[str | Path], *, allow_download: bool = False,
            feedback: dict[str, Any] | None = None) -> Path:
    """The main file of model `name` (a folder name, a path to the folder or the file):
    found, or (a known model) fetched into the first dir when allowed, with `feedback`
    (`progress`, `say`, `interrupted`, as `Known.fetch` takes them); else SourceError saying
    what to put where."""
    main = main_file(spec)
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    if (direct / main).is_file():
        return direct / main
    have = local(spec, dirs)
    if name in have:
        return have[name]
    model: Model | None = next((m for m in spec.models if m.match == name), None)
    where = ", ".join(str(d) for d in dirs) or "(no model folder configured)"
    if model is None:
        raise SourceError(f"{spec.name} model {name!r} not found in {where}: put a folder "
                          f"{name}/ holding {' and '.join(spec.models[0].files)} there")
    if not dirs:
        raise SourceError(f"{spec.name} model {name!r} not found and no model folder is "
                          "configured")
    entry = known()[model.folder]
    return entry.fetch(dirs[0], allow=allow_download, **(feedback or {})) / main
