"""Loaded-model handles and the identity of a source.

A source is built once from its build options (files, runtime, device…) and shared by every
caller that asks for the same ones; what each call wants (label, weight, method…) travels
with the call. `identity` names a source by its registry name and build options — the one
name the node handle cache and the CLI's resume cache both use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..host.memory import MemoryPolicy
from .base import Source
from .catalogue import spec
from .registry import create

HOW_NOT_WHAT = frozenset({"batch_size", "keep_loaded", "device"})
"""Options that change how a source runs (speed, memory, where), never the cards it makes."""


def canon(x: Any) -> Any:
    """Options as stable JSON: paths as strings, sets sorted, anything else by repr."""
    if isinstance(x, Mapping):
        return {str(k): canon(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, (list, tuple)):
        return [canon(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return sorted(canon(v) for v in x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


MAX_LISTED = 1000
"""A folder option names at most this many of its files (a reference folder, not an archive)."""


def versioned(value: Any) -> Any:
    """A path to an existing file also names its size and mtime (a model file replaced in
    place is a new model); a folder, the names, sizes and mtimes of the files in it (a
    reference folder that changed is a new configuration)."""
    if isinstance(value, (str, Path)) and str(value):
        try:
            p = Path(value).expanduser()
            if p.is_file():
                st = p.stat()
                return f"{value}|{st.st_size}|{st.st_mtime_ns}"
            if p.is_dir():
                files = sorted(f for f in p.iterdir() if f.is_file())[:MAX_LISTED]
                listing = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
                digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
                return f"{value}|{digest}"
        except (OSError, ValueError):
            pass
    return value


def identity(name: str, build: Mapping[str, Any], *, results_only: bool = False) -> str:
    """"name:<hash>" over the source's build options (its spec's defaults under `build`;
    files by path, size and mtime). `results_only` leaves out what changes how it runs, not
    what it says (`HOW_NOT_WHAT`): the resume cache's view of the same source."""
    full = {**spec(name).build, **build}
    if results_only:
        full = {k: v for k, v in full.items() if k not in HOW_NOT_WHAT}
    material = json.dumps({"source": name, "build": canon({k: versioned(v)
                                                           for k, v in full.items()})},
                          sort_keys=True)
    return f"{name}:{hashlib.sha256(material.encode()).hexdigest()[:32]}"


class Handles:
    """Loaded sources by identity, built with `memory` (the host's memory policy), shared by
    every caller that asks for the same build options; each stays loaded until the host
    evicts it or a call asks to unload."""

    def __init__(self, memory: MemoryPolicy | None = None) -> None:
        self.memory = memory
        self._by_identity: dict[str, Source] = {}

    def get(self, name: str, **build: Any) -> Source:
        """The handle of source `name` built with `build`. Run options never go here: they
        travel with each call (`ScoreContext.options`)."""
        run = set(spec(name).options.__dataclass_fields__) & set(build)
        if run:
            raise TypeError(f"{', '.join(sorted(run))}: run options of {name} go with the "
                            "call, not into the shared handle")
        key = identity(name, build)
        source = self._by_identity.get(key)
        if source is None:
            source = self._by_identity[key] = create(name, memory=self.memory, **build)
        return source

    def __iter__(self) -> Iterator[Source]:
        return iter(list(self._by_identity.values()))
