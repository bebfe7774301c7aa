"""Where tagger model files are: folders holding `model.onnx` plus its label file(s) —
`selected_tags.csv` (WD v3) or `model_vocabulary.json` (CL Tagger v2) — or a flat pair
`<name>.onnx` + `<name>.csv` (the layout of the popular WD14 tagger node); a known model
missing from them is downloaded (`host.download`) when allowed. The caller passes the folders
to search (the ComfyUI node its registered model folders, the CLI a --models directory).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import SourceError
from ...host.download import Progress, download
from ..catalogue import spec


@dataclass(frozen=True)
class Known:
    """A model Saiten knows how to fetch: its repository and the files a source needs."""

    repo_id: str
    files: tuple[str, ...]
    kind: str  # "wd" or "cl"
    subfolder: str = ""


def known() -> dict[str, Known]:
    """The downloadable tagger models by folder name, from the WD and CL specs (the CL files
    live in the repository's version folder)."""
    return {m.match: Known(m.repo, m.files, kind, m.subfolder)
            for kind in ("wd", "cl") for m in spec(kind).models}


LABEL_FILES = {"wd": "selected_tags.csv", "cl": "model_vocabulary.json"}


def kind_of(model: Path) -> str | None:
    """"wd" or "cl" for a model.onnx (or flat <name>.onnx) by its label files, else None."""
    folder = model.parent
    if (folder / LABEL_FILES["cl"]).is_file() and model.name == "model.onnx":
        return "cl"
    if model.with_suffix(".csv").is_file() or (
            model.name == "model.onnx" and (folder / LABEL_FILES["wd"]).is_file()):
        return "wd"
    return None


def list_models(dirs: Iterable[str | Path]) -> dict[str, Path]:
    """Every WD/CL model under `dirs` (a folder with model.onnx, up to two levels deep, or a
    flat <name>.onnx + <name>.csv), as {display name: model.onnx path}; first dir wins."""
    found: dict[str, Path] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        candidates = sorted([*root.glob("*/model.onnx"), *root.glob("*/*/model.onnx"),
                             *root.glob("*.onnx")])
        for path in candidates:
            if kind_of(path) is None:
                continue
            rel = path.relative_to(root)
            name = str(rel.parent.as_posix()) if path.name == "model.onnx" else path.stem
            found.setdefault(name, path)
    return found


def find_model(name_or_repo: str, dirs: Sequence[str | Path]) -> Path | None:
    """The local model.onnx for a name ("wd-vit-tagger-v3", "cl_tagger_v2/v2_00"), a repo
    id ("SmilingWolf/wd-vit-tagger-v3") or a path; None when no dir holds it."""
    direct = Path(name_or_repo).expanduser()
    if direct.is_file():
        return direct
    if (direct / "model.onnx").is_file():
        return direct / "model.onnx"
    names = [name_or_repo, name_or_repo.split("/")[-1], name_or_repo.replace("/", "_")]
    entry = known().get(names[1])
    for d in dirs:
        root = Path(d)
        for n in names:
            for path in (root / n / "model.onnx", root / n / (entry.subfolder if entry else "")
                         / "model.onnx", root / f"{n}.onnx"):
                if path.is_file() and kind_of(path):
                    return path
    return None


def resolve(name: str, dirs: Sequence[str | Path], *, allow_download: bool = False,
            progress: Progress | None = None) -> Path:
    """model.onnx for `name`: found locally, or (a known model) downloaded into the first
    dir when allowed. SourceError otherwise, saying what to put where."""
    found = find_model(name, dirs)
    if found is not None:
        return found
    entry = known().get(name.split("/")[-1])
    if not dirs:
        raise SourceError(f"model {name!r} not found and no model folder is configured")
    first = Path(dirs[0])
    if entry is None:
        raise SourceError(
            f"model {name!r} not found in {', '.join(str(d) for d in dirs)}: put a folder "
            f"{name}/ with model.onnx and selected_tags.csv (WD) or model.onnx, model.onnx.data "
            "and model_vocabulary.json (CL) there")
    dest = first / name.split("/")[-1]
    download(entry.repo_id, entry.files, dest, allow=allow_download,
             subfolder=entry.subfolder, progress=progress)
    return dest / "model.onnx"
