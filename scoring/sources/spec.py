"""The shapes a source declares about itself, as data (timm's pretrained cfgs).

Each backend declares a `Spec` beside its code (`SPEC` in its module): its kind and axes, its
default weight, its build options (what identifies a loaded model, with the defaults the
nodes and the CLI show), its run options (an `Options` dataclass that travels per call in
the ScoreContext), the choices of its enumerated options, and the models it knows (name
patterns → the cards' label and weight; repositories and files). `catalogue` gathers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunOptions:
    """Per-call options every source takes; passed in `ScoreContext.options`, never stored
    on a source. `label` "" = the source's own name; `weight` None = the model's default;
    `keep_loaded` False unloads the model after the call."""

    label: str = ""
    weight: float | None = None
    keep_loaded: bool = True


@dataclass(frozen=True)
class Model:
    """A model the catalogue knows.

    `match` is a lower-case fragment of its file or folder name; `label` the cards' source
    name for it and `weight` their default weight; `gguf` restricts the match to GGUF files
    (True) or to anything else (False).

    A model with a `folder` can be fetched (`sources.known`): into that folder (its name too)
    under its family's model folder, from `files` of the Hub repository `repo` (in
    `subfolder`), from every file of `repo` matching `patterns` (a whole transformers folder),
    or from `url` (one file published elsewhere: `files[0]` there, `sha256` and `size`
    pinned). `size` is its bytes on disk (all files, as published: the Hub's own size is
    checked before downloading), `vram` what it needs on the card, `licence` its licence and
    `note` what users choose it for.
    """

    match: str
    label: str
    weight: float | None = None
    gguf: bool | None = None
    repo: str = ""
    files: tuple[str, ...] = ()
    subfolder: str = ""
    folder: str = ""
    patterns: tuple[str, ...] = ()
    url: str = ""
    sha256: str = ""
    size: int = 0
    vram: str = ""
    licence: str = ""
    note: str = ""

    def matches(self, name: str, *, gguf: bool = False) -> bool:
        return self.match in name.lower() and (self.gguf is None or self.gguf == gguf)


@dataclass(frozen=True)
class Spec:
    """One backend's declared facts (see the module docstring)."""

    name: str
    kind: str
    provides: tuple[str, ...]
    default_weight: float = 1.0
    options: type[RunOptions] = RunOptions
    build: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    models: tuple[Model, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Anything else callers read: capabilities, prices, default endpoint and model…"""

    def model(self, name: str, *, gguf: bool = False) -> Model | None:
        """The known model whose pattern `name` matches, or None."""
        return next((m for m in self.models if m.matches(name, gguf=gguf)), None)

    def label_for(self, name: str, *, gguf: bool = False) -> str:
        """The cards' source name for a model file or folder: the catalogue's name for a
        model it knows, else the name itself."""
        m = self.model(name, gguf=gguf)
        return m.label if m else name

    def weight_for(self, label: str) -> float:
        """The default weight of cards labelled `label` (a known model's, else the spec's)."""
        m = next((m for m in self.models if m.label == label), None)
        return m.weight if m is not None and m.weight is not None else self.default_weight

    def option_default(self, name: str) -> Any:
        """The default of a run option, or of a build option."""
        fields = self.options.__dataclass_fields__
        if name in fields:
            return fields[name].default
        return self.build[name]


__all__ = ["Model", "RunOptions", "Spec"]
