"""Where model files come from: tagger folders (local first, Hugging Face only when
allowed) and VLMs (transformers folders, GGUF files paired with their mmproj).

A model is a folder holding `model.onnx` plus its label file(s) — `selected_tags.csv` (WD v3)
or `model_vocabulary.json` (CL Tagger v2) — or a flat pair `<name>.onnx` + `<name>.csv`
(the layout of the popular WD14 tagger node). The caller passes the folders to search
(the ComfyUI node passes its registered model folders, the CLI a --models directory).

Downloads go through `huggingface_hub`, never re-fetch a present file, honour
HF_HUB_OFFLINE and HF_ENDPOINT, and use HF_TOKEN from the environment (CL Tagger v2 is gated
and its license forbids redistribution: it is only ever fetched from the official repository).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError
from .vlm_folder import listable

Progress = Callable[[str, int, int | None], None]
"""progress(file name, bytes done, total bytes or None)."""


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
    from .catalogue import spec

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


def offline() -> bool:
    """Whether the Hugging Face Hub must not be contacted (HF_HUB_OFFLINE=1)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _tqdm_class(progress: Progress, name: str) -> type:
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # forwards huggingface_hub's byte counts to `progress`
        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            progress(name, int(self.n), int(self.total) if self.total else None)
            return out

    return Reporting


def download(repo_id: str, files: Sequence[str], dest: str | Path, *, allow: bool = True,
             subfolder: str = "", progress: Progress | None = None,
             revision: str | None = None) -> Path:
    """Make sure `dest` holds every file of `files` (from `subfolder` of the repo) and
    return `dest`. Present files are never fetched again; a missing one is downloaded only
    when `allow` and not offline, else SourceError says where to put it."""
    dest = Path(dest)
    missing = [f for f in files if not (dest / f).is_file()]
    if not missing:
        return dest
    url = f"https://huggingface.co/{repo_id}" + (f"/tree/main/{subfolder}" if subfolder else "")
    if not allow or offline():
        why = "offline (HF_HUB_OFFLINE)" if allow else "downloads are off"
        raise SourceError(
            f"{', '.join(missing)} missing and {why}: put {' and '.join(files)} in {dest} "
            f"(from {url})")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise SourceError("huggingface_hub is not installed: pip install huggingface_hub") from e
    dest.mkdir(parents=True, exist_ok=True)
    token = os.environ.get("HF_TOKEN") or None
    for f in missing:
        remote = f"{subfolder}/{f}" if subfolder else f
        try:
            got = Path(hf_hub_download(
                repo_id, remote, local_dir=dest, revision=revision, token=token,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                tqdm_class=_tqdm_class(progress, f) if progress else None))
        except Exception as e:
            text = str(e)
            hint = ""
            if any(k in text for k in ("401", "403", "gated", "Gated", "restricted")):
                hint = (f" — {repo_id} is gated: accept its terms at {url} and set HF_TOKEN "
                        "in the environment")
            raise SourceError(f"cannot download {remote} from {repo_id}: "
                              f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
                              f"{hint}. Or put {' and '.join(files)} in {dest} yourself.") from e
        if got != dest / f:  # a repo subfolder lands in dest/<subfolder>/: move it up
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            got.replace(dest / f)
    return dest


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


# -- VLMs ------------------------------------------------------------------------------
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
