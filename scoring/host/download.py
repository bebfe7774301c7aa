"""Model files from the Hugging Face Hub: fetched only when the user allowed it, never
fetched again when present; HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN from the environment
are honoured (CL Tagger v2 is gated and its license forbids redistribution: it is only ever
fetched from the official repository)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.errors import SourceError

Progress = Callable[[str, int, int | None], None]
"""progress(file name, bytes done, total bytes or None)."""


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
