"""Every model the catalogue can fetch: its name, where it goes, whether it is there, and the
one call that fetches it (the nodes' `allow_download`, the CLI's `models download`).

A known model is a `Model` of some source's spec with a `folder` (its name and its folder under
the family's root in ComfyUI's models folder). Its files are `files` of a Hub repository (from
`subfolder`), every file of the repository matching `patterns` (a whole transformers folder),
or one file published elsewhere at `url` with its `sha256` and `size` pinned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SourceError
from ..host import download, hub
from ..host.download import Wanted
from .catalogue import specs
from .spec import Model

ROOTS = {"tagger": "saiten_tagger", "aesthetic": "saiten_aesthetic", "vlm": "saiten_vlm",
         "censor": "saiten_censor", "likeness": "saiten_likeness"}
"""Each family's folder in ComfyUI's models folder (registered with `folder_paths`)."""

FAMILY = {"wd": "tagger", "cl": "tagger", "aesthetic": "aesthetic", "aesthetic-head": "aesthetic",
          "vlm-transformers": "vlm", "vlm-llamacpp": "vlm", "censor": "censor",
          "likeness": "likeness"}
"""Which root a source's models go to."""


@dataclass(frozen=True)
class Known:
    """A fetchable model: `name` (= its folder), the source whose spec lists it, its facts."""

    name: str
    source: str
    model: Model

    @property
    def family(self) -> str:
        return FAMILY[self.source]

    @property
    def root(self) -> str:
        return ROOTS[self.family]

    def dest(self, root: str | Path) -> Path:
        """Its folder under `root` (the family's folder)."""
        return Path(root) / self.name

    def present(self, root: str | Path) -> bool:
        """Whether its files are all in `root` (a whole-repository model: its folder exists
        with a config.json, or a .gguf for a GGUF pair)."""
        dest = self.dest(root)
        if self.model.patterns:
            return (dest / "config.json").is_file()
        return bool(self.model.files) and all((dest / f).is_file() for f in self.model.files)

    def wanted(self) -> list[Wanted]:
        """Its files as `Wanted` (a whole repository is listed on the Hub first)."""
        m = self.model
        if m.url:
            return [Wanted(m.files[0], url=m.url, size=m.size, sha256=m.sha256)]
        if m.patterns:  # config.json last: a folder with it is complete (`present`)
            listed = download.repo_files(m.repo, m.patterns, subfolder=m.subfolder)
            return sorted(listed, key=lambda w: w.name == "config.json")
        return download.hub_files(m.repo, m.files, m.subfolder)

    def fetch(self, root: str | Path, *, allow: bool, progress: download.Progress | None = None,
              say: Callable[[str], None] | None = None,
              interrupted: Callable[[], bool] | None = None) -> Path:
        """Make sure it is in `root`; returns its folder. SourceError says what to do."""
        dest = self.dest(root)
        if self.present(root):
            return dest
        source = self.model.url or hub.page(self.model.repo, self.model.subfolder)
        what = " and ".join(self.model.files) or "the model files"
        why = ("downloads are off" if not allow else
               "the Hub is offline (HF_HUB_OFFLINE)" if hub.offline() and self.model.repo
               else "")
        if why:
            raise SourceError(f"{self.name} is not in {Path(root)} and {why}: switch "
                              f"allow_download on, run `python -m scoring models download "
                              f"{self.name}`, or put {what} in {dest} (from {source})")
        return download.fetch(self.wanted(), dest, allow=True, progress=progress, say=say,
                              interrupted=interrupted)


def known(family: str | None = None) -> dict[str, Known]:
    """The fetchable models by name (of one family, or all)."""
    out: dict[str, Known] = {}
    for source, spec in specs().items():
        if source not in FAMILY or (family and FAMILY[source] != family):
            continue
        for m in spec.models:
            if m.folder and m.folder not in out:
                out[m.folder] = Known(m.folder, source, m)
    return out


def find(name: str) -> Known:
    """The known model called `name` (its folder name or, unambiguously, its repository)."""
    every = known()
    if name in every:
        return every[name]
    by_repo = [k for k in every.values() if name in (k.model.repo, k.model.repo.split("/")[-1])]
    if len(by_repo) == 1:
        return by_repo[0]
    raise SourceError(f"no known model {name!r}; known: {', '.join(sorted(every))}")


def missing(family: str, roots: Sequence[str | Path]) -> list[str]:
    """The family's known models present in none of `roots`."""
    return [k.name for k in known(family).values()
            if not any(k.present(r) for r in roots)]


__all__ = ["FAMILY", "ROOTS", "Known", "find", "known", "missing"]
