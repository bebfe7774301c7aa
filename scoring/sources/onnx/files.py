"""Where tagger model files are: folders holding `model.onnx` plus its label file(s) —
`selected_tags.csv` (WD v3) or `model_vocabulary.json` (CL Tagger v2) — or a flat pair
`<name>.onnx` + `<name>.csv` (the layout of the popular WD14 tagger node); a known model
missing from them is fetched (`sources.known`) when allowed. The caller passes the folders to
search (the ComfyUI node its registered model folders, the CLI a --models directory).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...core.errors import SourceError
from ..base import Source
from ..catalogue import spec
from ..handles import Handles
from ..known import Known
from ..known import known as catalogue_known
from ..registry import unavailable

TAGGERS = ("wd", "cl")
NUDENET = "nudenet (offline)"
"""The Tagger's choice that needs no file: NudeNet's detector from its pip package."""
MODES = ("fixed", "per-tag", "mcut")
"""The Tagger's one threshold-mode widget over WD's MCut and CL's per-tag thresholds."""


def known() -> dict[str, Known]:
    """The fetchable tagger models by folder name (`Known.source` is "wd" or "cl")."""
    return catalogue_known("tagger")


def label_files() -> dict[str, str]:
    """Each tagger kind's label file name (its spec's `labels` fact)."""
    return {kind: spec(kind).facts["labels"] for kind in TAGGERS}


def kind_of(model: Path) -> str | None:
    """"wd" or "cl" for a model.onnx (or flat <name>.onnx) by its label files, else None."""
    folder, labels = model.parent, label_files()
    if (folder / labels["cl"]).is_file() and model.name == "model.onnx":
        return "cl"
    if model.with_suffix(".csv").is_file() or (
            model.name == "model.onnx" and (folder / labels["wd"]).is_file()):
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
            sub = entry.model.subfolder if entry else ""
            for path in (root / n / "model.onnx", root / n / sub / "model.onnx",
                         root / f"{n}.onnx"):
                if path.is_file() and kind_of(path):
                    return path
    return None


def resolve(name: str, dirs: Sequence[str | Path], *, allow_download: bool = False,
            **feedback: Any) -> Path:
    """model.onnx for `name`: found locally, or (a known model) downloaded into the first
    dir when allowed (`feedback`: progress, say, interrupted — see `host.download.fetch`).
    SourceError otherwise, saying what to put where."""
    found = find_model(name, dirs)
    if found is not None:
        return found
    entry = known().get(name.split("/")[-1])
    if not dirs:
        raise SourceError(f"model {name!r} not found and no model folder is configured")
    first = Path(dirs[0])
    if entry is None:
        labels = label_files()
        raise SourceError(
            f"model {name!r} not found in {', '.join(str(d) for d in dirs)}: put a folder "
            f"{name}/ with model.onnx and {labels['wd']} (WD) or model.onnx, model.onnx.data "
            f"and {labels['cl']} (CL) there")
    return entry.fetch(first, allow=allow_download, **feedback) / "model.onnx"


def choices(dirs: Sequence[str | Path]) -> list[str]:
    """The Tagger's model choices: NudeNet, every local WD/CL model, then the known
    downloadable ones not present."""
    local = sorted(list_models(dirs))
    missing = [k for k in known() if not any(n.split("/")[0] == k for n in local)]
    return [NUDENET, *local, *missing]


def build_options(kind: str, *, general: float = 0.0, character: float = 0.0,
                  mode: str = "fixed") -> dict[str, Any]:
    """The Tagger's threshold widgets → build options of `kind`; a threshold of 0 means the
    model's recommended one (its spec's, the CLI's default too); `mode` one of `MODES`."""
    b = spec(kind).build
    if kind == "wd":
        return {"general_threshold": general or b["general_threshold"],
                "character_threshold": character or b["character_threshold"],
                "mcut": mode == "mcut"}
    if kind == "cl":
        return {"threshold": general or b["threshold"],
                "character_threshold": character or b["character_threshold"],
                "threshold_mode": "per-tag" if mode == "per-tag" else "single"}
    return {}


def open_tagger(name: str, dirs: Sequence[str | Path], handles: Handles, *,
                allow_download: bool = False, feedback: dict[str, Any] | None = None,
                batch_size: int = 8, **thresholds: Any) -> Source:
    """The Tagger for a model choice, in one call: the name resolved to its files (a known
    model downloaded when allowed), its kind's spec and build options, and the shared handle
    from `handles`. A model that cannot be had comes back as an `Unavailable` saying what to
    do, so the rest of the graph runs."""
    if name == NUDENET:
        return handles.get("nudenet", batch_size=batch_size)
    try:
        path = resolve(name, dirs, allow_download=allow_download, **(feedback or {}))
        kind = kind_of(path)
        if kind is None:
            labels = label_files()
            raise SourceError(f"{path}: no {labels['wd']} (WD) or {labels['cl']} (CL) next "
                              "to it")
    except SourceError as e:  # a missing model: this source abstains, the graph runs on
        entry = known().get(name.split("/")[-1])
        return unavailable(entry.source if entry else "wd", str(e), label=name)
    return handles.get(kind, model_path=str(path), batch_size=batch_size,
                       **build_options(kind, **thresholds))
