"""Where VLM files are: transformers folders (a config.json that sees images) and GGUF files,
each GGUF paired with its mmproj — the same pairing in the node and the CLI — and the VLM
Loader's one call from its widgets to a shared handle (`open_vlm`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...core.errors import Cancelled, SourceError, reason
from ..base import Source
from ..catalogue import spec
from ..handles import Handles
from ..known import Known, known
from ..registry import unavailable
from .base import model_label
from .folder import listable

RUNTIMES = {"transformers": "vlm-transformers", "llama.cpp": "vlm-llamacpp",
            "openai-compatible": "vlm-http"}
"""The VLM Loader's runtime choices → registry names."""
AUTO_MMPROJ = "auto (paired file next to the model)"

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


def loader_build(runtime: str, model: str, mmproj: str, roots: Sequence[str | Path], *,
                 served: Sequence[str] = (), dtype: str = "auto", quantization: str = "none",
                 n_gpu_layers: int = -1, chat_format: str = "auto", base_url: str = "",
                 model_name: str = "", timeout: float | None = None
                 ) -> tuple[str, dict[str, object]]:
    """The VLM Loader's widgets → (registry name, build options); SourceError saying what
    to fix. `model` "" = none chosen; `served` = folders ComfyUI serves (no key file there)."""
    if runtime not in RUNTIMES:
        raise SourceError(f"unknown runtime {runtime!r}; use one of {list(RUNTIMES)}")
    if runtime == "openai-compatible":
        if not model_name.strip():
            raise SourceError("openai-compatible: set model_name (the server's model id)")
        return "vlm-http", {"base_url": base_url.strip(), "model": model_name.strip(),
                            "timeout": float(timeout or spec("vlm-http").build["timeout"]),
                            "forbidden_dirs": tuple(served)}
    if not model:
        raise SourceError("no model: put a transformers folder or a GGUF + its mmproj in "
                          "the VLM model folder")
    path = find_vlm(model, roots)
    if runtime == "transformers":
        return "vlm-transformers", {"model_dir": str(path), "dtype": dtype,
                                    "quantization": quantization}
    if path.is_dir() or path.suffix.lower() != ".gguf":
        raise SourceError(f"llama.cpp needs a GGUF file, {model!r} is not one")
    _, files = vlm_files(str(path), None if mmproj == AUTO_MMPROJ else mmproj, roots)
    return "vlm-llamacpp", {**files, "chat_format": chat_format,
                            "n_gpu_layers": "auto" if n_gpu_layers < 0 else int(n_gpu_layers)}


def known_entries() -> dict[str, Known]:
    """The fetchable VLMs by the name the loader lists them under: a GGUF as
    `<folder>/<gguf>` (its paired mmproj beside it), a transformers model as its folder."""
    out = {}
    for k in known("vlm").values():
        gguf = [f for f in k.model.files if f.endswith(".gguf") and "mmproj" not in f]
        out[f"{k.name}/{gguf[0]}" if gguf else k.name] = k
    return out


def choices(roots: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """The loader's (models, mmproj files): every local one, then the known VLMs that are
    not present (fetched when the loader's allow_download is on)."""
    found, projs = list_vlms(roots)
    missing = [n for n, k in known_entries().items()
               if n not in found and not any(k.present(r) for r in roots)]
    return [*found, *missing], projs


def fetch_known(model: str, roots: Sequence[str | Path], *, allow: bool,
                **feedback: Any) -> None:
    """A known VLM chosen but absent: fetched into the first root when allowed (a GGUF
    with its paired mmproj from the same repository), else SourceError saying how."""
    k = known_entries().get(model)
    if k is None or any(k.present(r) for r in roots):
        return
    if not roots:
        raise SourceError("no VLM model folder is configured")
    k.fetch(roots[0], allow=allow, **feedback)


def open_vlm(runtime: str, model: str, mmproj: str, roots: Sequence[str | Path],
             handles: Handles, *, allow_download: bool = False,
             feedback: dict[str, Any] | None = None, **widgets: Any) -> Source:
    """The shared handle for the loader's widgets, in one call (a known model fetched first
    when `allow_download`); one that cannot be created comes back as an `Unavailable`
    saying why, so the rest of the workflow still runs."""
    name = RUNTIMES.get(runtime, "vlm-transformers")
    try:
        if runtime != "openai-compatible":
            fetch_known(model, roots, allow=allow_download, **(feedback or {}))
        name, build = loader_build(runtime, model, mmproj, roots, **widgets)
        return handles.get(name, **build)
    except Cancelled:
        raise
    except Exception as e:  # a missing runtime or file fails this source only
        label = model_label(Path(model).stem, gguf=model.lower().endswith(".gguf")) \
            if model and runtime != "openai-compatible" else runtime
        return unavailable(name, reason(e), label=label)
