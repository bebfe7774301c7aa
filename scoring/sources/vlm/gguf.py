"""GGUF files, read without loading them: the header (metadata and, for an mmproj, tensor
shapes) and the facts a text model and its mmproj must agree on (`GGUFPair.check`).

Used by model discovery (pairing a GGUF with its mmproj) and by the llama.cpp backend;
it needs no llama.cpp.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import SourceError

QWEN_VL_PROJECTORS = frozenset({"qwen2vl_merger", "qwen2.5vl_merger", "qwen2.5o"})
LLAVA_PROJECTORS = frozenset({"mlp", "mlp_norm", "ldp", "ldpv2"})
FAMILY_PROJECTORS: dict[str, frozenset[str]] = {
    "qwen2vl": QWEN_VL_PROJECTORS,
    "qwen3vl": frozenset({"qwen3vl_merger"}),
    "qwen3vlmoe": frozenset({"qwen3vl_merger"}),
}
"""Text architectures that only work with their own projector types (M-RoPE models)."""


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24  # longer strings (or key counts) mean a corrupt or non-GGUF file


def read_gguf_header(path: str | Path, *, tensors: bool = False
                     ) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The metadata of a GGUF file (arrays as their length only) and, with `tensors`, each
    tensor's shape in ggml order (ne0 first). Reads the header only; stdlib only (the `gguf`
    package parses every vocabulary string and takes seconds on a 150k-token model)."""
    with open(path, "rb") as f:
        def scalar(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            n = scalar("<Q")
            if n > _MAX_STRING:
                raise ValueError(f"corrupt header (a {n}-byte string)")
            return f.read(n).decode("utf-8", "replace")

        def value(vtype: int) -> Any:
            if vtype == _STRING:
                return string()
            if vtype == _ARRAY:
                item, n = scalar("<I"), scalar("<Q")
                if item == _STRING:
                    for _ in range(n):
                        f.seek(scalar("<Q"), os.SEEK_CUR)
                elif item in _SCALARS:
                    f.seek(n * struct.calcsize(_SCALARS[item]), os.SEEK_CUR)
                else:
                    for _ in range(n):
                        value(item)
                return n
            return scalar(_SCALARS[vtype])

        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version = scalar("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_kv = scalar("<Q"), scalar("<Q")
        if n_kv > _MAX_STRING or n_tensors > _MAX_STRING:
            raise ValueError("corrupt header")
        meta = {}
        for _ in range(n_kv):
            key = string()
            meta[key] = value(scalar("<I"))
        shapes: dict[str, tuple[int, ...]] = {}
        if tensors:
            for _ in range(n_tensors):
                name = string()
                dims = tuple(scalar("<Q") for _ in range(scalar("<I")))
                f.seek(4 + 8, os.SEEK_CUR)  # type, offset
                shapes[name] = dims
        return meta, shapes


@dataclass(frozen=True)
class GGUFPair:
    """What the text model's and the mmproj's headers say about each other."""

    model_path: Path
    mmproj_path: Path
    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    projector: str
    projector_width: int | None
    projection_dim: int | None = None
    n_vocab: int = 0
    vision_patch: int = 0
    vision_width: int = 0
    vision_heads: int = 0

    @property
    def model_bytes(self) -> int:
        return self.model_path.stat().st_size

    @property
    def mmproj_bytes(self) -> int:
        return self.mmproj_path.stat().st_size

    def check(self) -> None:
        """Raise SourceError, naming both files, when they cannot work together."""
        names = f"text model {self.model_path.name!r} and mmproj {self.mmproj_path.name!r}"
        # the layer shapes decide; the converter's projection_dim can only excuse them
        if (self.projector_width not in (None, self.n_embd)
                and self.projection_dim != self.n_embd):
            raise SourceError(
                f"mismatched GGUF pair: {names}: the projector outputs {self.projector_width}-wide "
                f"embeddings but the text model's embedding length is {self.n_embd}. "
                "Use the mmproj file published with this model."
            )
        wanted = FAMILY_PROJECTORS.get(self.arch)
        owners = {a for a, p in FAMILY_PROJECTORS.items() if self.projector in p}
        if (wanted and self.projector not in wanted) or (owners and self.arch not in owners):
            raise SourceError(
                f"mismatched GGUF pair: {names}: projector type {self.projector!r} does not "
                f"belong to text architecture {self.arch!r}. "
                "Use the mmproj file published with this model."
            )

    def chat_format(self) -> str:
        """The chat handler for this family: Qwen2-VL/2.5-VL, LLaVA, else generic mtmd."""
        if self.projector in QWEN_VL_PROJECTORS:
            return "qwen2.5-vl"
        if self.projector in LLAVA_PROJECTORS:
            return "llava-1.5"
        return "mtmd"


def _projector_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Width of the embeddings the projector outputs, from the last `mm.N` layer's shape
    (what libmtmd compares); None for projectors laid out some other way."""
    last = max((int(n.split(".")[1]) for n in shapes
                if n.startswith("mm.") and n.split(".")[1].isdigit()), default=None)
    if last is None:
        return None
    bias, weight = shapes.get(f"mm.{last}.bias"), shapes.get(f"mm.{last}.weight")
    if bias:
        return int(bias[0])
    return int(weight[1]) if weight and len(weight) == 2 else None


def read_pair(model_path: str | Path, mmproj_path: str | Path) -> GGUFPair:
    """Read both headers (no weights); SourceError when a file is missing or not a GGUF."""
    model_path, mmproj_path = Path(model_path), Path(mmproj_path)
    for what, p in (("text model", model_path), ("mmproj", mmproj_path)):
        if not p.is_file():
            raise SourceError(f"{what} file not found: {p}")
    try:
        meta, _ = read_gguf_header(model_path)
    except (OSError, ValueError, struct.error, KeyError) as e:
        raise SourceError(f"cannot read text model {model_path.name!r}: {e}") from e
    try:
        pmeta, shapes = read_gguf_header(mmproj_path, tensors=True)
    except (OSError, ValueError, struct.error, KeyError) as e:
        raise SourceError(f"cannot read mmproj {mmproj_path.name!r}: {e}") from e
    arch = str(meta.get("general.architecture", ""))
    if arch == "clip":
        raise SourceError(f"{model_path.name!r} is an mmproj (vision projector), not a text "
                          "model: swap the two files")
    if pmeta.get("general.architecture") != "clip":
        raise SourceError(f"{mmproj_path.name!r} is not an mmproj (its architecture is "
                          f"{pmeta.get('general.architecture')!r}, expected 'clip')")
    n_embd = meta.get(f"{arch}.embedding_length")
    if not isinstance(n_embd, int):
        raise SourceError(f"text model {model_path.name!r} has no {arch}.embedding_length")
    n_head = int(meta.get(f"{arch}.attention.head_count", 1) or 1)
    dim = pmeta.get("clip.vision.projection_dim")
    dim = dim if isinstance(dim, int) and dim > 0 else None
    projector = str(pmeta.get("clip.projector_type") or pmeta.get("clip.vision.projector_type")
                    or "")
    return GGUFPair(
        model_path=model_path, mmproj_path=mmproj_path, arch=arch, n_embd=n_embd,
        n_layer=int(meta.get(f"{arch}.block_count", 0)), n_head=n_head,
        n_head_kv=int(meta.get(f"{arch}.attention.head_count_kv", n_head) or n_head),
        projector=projector, projector_width=_projector_width(shapes) or dim, projection_dim=dim,
        n_vocab=_int(meta.get("tokenizer.ggml.tokens")) or _int(meta.get(f"{arch}.vocab_size")),
        vision_patch=_int(pmeta.get("clip.vision.patch_size")),
        vision_width=_int(pmeta.get("clip.vision.embedding_length")),
        vision_heads=_int(pmeta.get("clip.vision.attention.head_count")),
    )


def _int(value: Any) -> int:
    """A positive integer from the header, else 0 (unknown)."""
    return value if isinstance(value, int) and value > 0 else 0
