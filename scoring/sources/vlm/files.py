"""Where VLM files are: transformers folders (a config.json that sees images) and GGUF files,
each GGUF paired with its mmproj — the same pairing in the node and the CLI."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...core.errors import SourceError
from .folder import listable

_QUANT_SUFFIX = re.compile(r"[-_.](i?q\d[\w]*|f16|bf16|f32)$")


def is_mmproj(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def list_vlms(roots: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """(models, mmproj files) relative to their root: transformers folders (with a
    config.json, up to three levels deep; not text-only ones, see `vlm_folder`) and GGUF
    files."""
    found, projs = set(), set()
    for r in roots:
        root = Path(r)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            here = Path(dirpath)
            depth = len(here.relative_to(root).parts)
            if "config.json" in filenames and depth:
                if listable(here):  # a text-only LLM (models/LLM is shared) cannot see
                    found.add(here.relative_to(root).as_posix())
                dirnames.clear()  # a model folder's subfolders are its own business
                continue
            if depth >= 3:
                dirnames.clear()
            for f in filenames:
                p = here / f
                if p.suffix.lower() == ".gguf":
                    (projs if is_mmproj(p) else found).add(p.relative_to(root).as_posix())
    return sorted(found), sorted(projs)


def find_vlm(name: str, roots: Sequence[str | Path] = ()) -> Path:
    """The full path of a VLM given by path, or by a name `list_vlms` lists under `roots`;
    SourceError when it is not there."""
    direct = Path(name).expanduser()
    if direct.is_absolute() and direct.exists():
        return direct
    for root in roots:
        p = Path(root) / name
        if p.exists():
            return p
    if direct.exists():
        return direct
    where = ", ".join(map(str, roots)) or "(no model folder given)"
    raise SourceError(f"model {name!r} not found under {where}")


def paired_mmproj(model: Path) -> Path:
    """The mmproj GGUF in the model's folder (the only one, or the one sharing its stem)."""
    candidates = sorted(p for p in model.parent.glob("*.gguf") if is_mmproj(p))
    if len(candidates) == 1:
        return candidates[0]
    stem = _QUANT_SUFFIX.sub("", model.stem.lower())
    named = [p for p in candidates if stem and stem in p.name.lower()]
    if len(named) == 1:
        return named[0]
    if not candidates:
        raise SourceError(f"{model.name} has no mmproj GGUF next to it: without its mmproj "
                          "(the vision tower and projector) a GGUF is a text-only model and "
                          "cannot see the images. Put the mmproj file published with this "
                          "model in the same folder, or choose it in the mmproj widget")
    found = ", ".join(p.name for p in candidates)
    raise SourceError(f"choose the mmproj for {model.name}: {len(candidates)} mmproj GGUF "
                      f"files next to it ({found}); it must be the one made for this model")


def vlm_files(name: str, mmproj: str | None = None, roots: Sequence[str | Path] = ()
              ) -> tuple[str, dict[str, str]]:
    """(registry name, file build options) for a VLM name or path: a folder runs with
    transformers (`model_dir`), a GGUF with llama.cpp (`model_path` + `mmproj_path`, the
    paired one unless `mmproj` names it) — the same pairing in the node and the CLI."""
    path = find_vlm(name, roots)
    if path.is_dir():
        return "vlm-transformers", {"model_dir": str(path)}
    if path.suffix.lower() != ".gguf":
        raise SourceError(f"{name!r} is neither a transformers model folder nor a GGUF file")
    proj = find_vlm(mmproj, roots) if mmproj else paired_mmproj(path)
    return "vlm-llamacpp", {"model_path": str(path), "mmproj_path": str(proj)}
