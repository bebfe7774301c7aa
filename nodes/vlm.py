"""VLM nodes: a loader (transformers, llama.cpp or an OpenAI-compatible server) and a rater.

Models live in ComfyUI's `models/saiten_vlm` folder (and `models/LLM` when another pack
registered it): transformers models as folders (what `save_pretrained` or a Hugging Face
download writes), llama.cpp models as a GGUF file plus its paired mmproj GGUF.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.cards import Sheet
from ..scoring.rubric import Rubric as RubricData
from ..scoring.sources import Source, SourceError
from ..scoring.sources.vlm import METHODS, VLMSource, model_label
from . import rerun
from .common import cached_source, cards_text, run_source
from .keys import ignored_widget_note, served_dirs
from .types import Rubric, Scores

FOLDER = "saiten_vlm"
SHARED_FOLDERS = ("LLM",)  # other packs' LLM folder, reused when registered
RUNTIMES = {"transformers": "vlm-transformers", "llama.cpp": "vlm-llamacpp",
            "openai-compatible": "vlm-http"}
CHAT_FORMATS = ("auto", "qwen2.5-vl", "llava-1.5", "mtmd")  # llama.cpp chat handlers
AUTO_MMPROJ = "auto (paired file next to the model)"
NO_MODEL = "(none found: put models in models/saiten_vlm)"

VLM = io.Custom("SAITEN_VLM")
"""A `VLMHandle`: the VLM source and whether it stays loaded after a run."""


def register_folder() -> None:
    """Register `models/saiten_vlm` with ComfyUI (idempotent)."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))


register_folder()


def model_roots() -> list[Path]:
    names = [FOLDER, *(n for n in SHARED_FOLDERS if n in folder_paths.folder_names_and_paths)]
    roots = []
    for name in names:
        roots += [Path(p) for p in folder_paths.get_folder_paths(name) if os.path.isdir(p)]
    return roots


def _is_mmproj(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def list_models() -> tuple[list[str], list[str]]:
    """(models, mmproj files) relative to their root: transformers folders (with a
    config.json, up to three levels deep) and GGUF files."""
    models, projs = set(), set()
    for root in model_roots():
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            here = Path(dirpath)
            depth = len(here.relative_to(root).parts)
            if "config.json" in filenames and depth:
                models.add(here.relative_to(root).as_posix())
                dirnames.clear()  # a model folder's subfolders are its own business
                continue
            if depth >= 3:
                dirnames.clear()
            for f in filenames:
                p = here / f
                if p.suffix.lower() == ".gguf":
                    (projs if _is_mmproj(p) else models).add(p.relative_to(root).as_posix())
    return sorted(models), sorted(projs)


def resolve(name: str) -> Path:
    """The full path of a model listed by `list_models`; SourceError when it is gone."""
    for root in model_roots():
        p = root / name
        if p.exists():
            return p
    raise SourceError(f"model {name!r} not found under {', '.join(map(str, model_roots()))}")


_QUANT_SUFFIX = re.compile(r"[-_.](i?q\d[\w]*|f16|bf16|f32)$")


def paired_mmproj(model: Path) -> Path:
    """The mmproj GGUF in the model's folder (the only one, or the one sharing its stem)."""
    candidates = sorted(p for p in model.parent.glob("*.gguf") if _is_mmproj(p))
    if len(candidates) == 1:
        return candidates[0]
    stem = _QUANT_SUFFIX.sub("", model.stem.lower())
    named = [p for p in candidates if stem and stem in p.name.lower()]
    if len(named) == 1:
        return named[0]
    found = ", ".join(p.name for p in candidates) or "none"
    raise SourceError(f"choose the mmproj for {model.name}: {len(candidates)} mmproj GGUF "
                      f"files next to it ({found}); it must be the one made for this model")


class Unavailable(Source):
    """Stands in for a VLM that could not be created: abstains with the reason."""

    name: ClassVar[str] = "vlm"
    kind: ClassVar[str] = "vlm"

    def __init__(self, reason: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.reason = reason

    def describe(self) -> str:
        return f"{self.label}: unavailable — {self.reason}"

    def _score(self, images, ctx) -> Sheet:
        raise SourceError(self.reason)


@dataclass
class VLMHandle:
    source: Source
    keep_loaded: bool = True
    label: str = ""  # the loader's name for the model (cards' default source name)


def make_source(runtime: str, model: str, mmproj: str, *, dtype: str = "auto",
                quantization: str = "none", n_gpu_layers: int = -1, chat_format: str = "auto",
                base_url: str = "", model_name: str = "", timeout: float = 60.0) -> Source:
    """The (cached) source for the loader's widgets; a source that cannot be created comes
    back as `Unavailable` so the rest of the workflow still runs."""
    label = None
    try:
        if runtime not in RUNTIMES:
            raise SourceError(f"unknown runtime {runtime!r}; use one of {list(RUNTIMES)}")
        if runtime == "openai-compatible":
            if not model_name.strip():
                raise SourceError("openai-compatible: set model_name (the server's model id)")
            label = model_label(model_name.strip())
            options = {"base_url": base_url.strip(), "model": model_name.strip(),
                       "timeout": float(timeout), "forbidden_dirs": tuple(served_dirs()),
                       "label": label}
        else:
            if model == NO_MODEL:
                raise SourceError(f"no model: put one in {os.path.join('models', FOLDER)}")
            path = resolve(model)
            label = model_label(path.stem, gguf=True) if path.is_file() else model_label(path.name)
            if runtime == "transformers":
                options = {"model_dir": str(path), "dtype": dtype, "quantization": quantization}
            else:
                if path.is_dir() or path.suffix.lower() != ".gguf":
                    raise SourceError(f"llama.cpp needs a GGUF file, {model!r} is not one")
                proj = paired_mmproj(path) if mmproj == AUTO_MMPROJ else resolve(mmproj)
                options = {"model_path": str(path), "mmproj_path": str(proj),
                           "n_gpu_layers": "auto" if n_gpu_layers < 0 else int(n_gpu_layers),
                           "chat_format": chat_format}
        return cached_source(RUNTIMES[runtime], **options)
    except Exception as e:  # a missing runtime or file fails this source only
        reason = str(e) if isinstance(e, SourceError) else f"{type(e).__name__}: {e}"
        return Unavailable(reason, label=label or runtime)


class SaitenVLMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        models, projs = list_models()
        return io.Schema(
            node_id="SaitenVLMLoader",
            display_name="Saiten VLM Loader",
            category="Saiten",
            description="Choose a VLM scorer: a transformers model folder (JoyCaption, "
                        "ToriiGate…), a GGUF + its mmproj for llama.cpp, or an "
                        "OpenAI-compatible server. The model loads when the rater first runs.",
            inputs=[
                io.Combo.Input("runtime", options=list(RUNTIMES), default="transformers"),
                io.Combo.Input("model", options=models or [NO_MODEL],
                               tooltip="models/saiten_vlm: a transformers folder or a GGUF"),
                io.Combo.Input("mmproj", options=[AUTO_MMPROJ, *projs],
                               tooltip="llama.cpp: the mmproj GGUF made for this model"),
                io.Combo.Input("dtype", options=["auto", "bf16", "fp16", "fp32"],
                               tooltip="transformers: auto = bf16/fp16 on GPU, fp32 on CPU"),
                io.Combo.Input("quantization", options=["none", "nf4"],
                               tooltip="transformers: nf4 = 4-bit bitsandbytes"),
                io.Int.Input("n_gpu_layers", default=-1, min=-1, max=999,
                             tooltip="llama.cpp: layers on the GPU; -1 = as many as fit"),
                io.Combo.Input("chat_format", options=list(CHAT_FORMATS), default="auto",
                               tooltip="llama.cpp: the chat handler; auto = from the model "
                                       "and mmproj pair"),
                io.String.Input("base_url", default="http://127.0.0.1:1234/v1",
                                tooltip="openai-compatible: the server's /v1 URL"),
                io.String.Input("model_name", default="",
                                tooltip="openai-compatible: the model id the server knows"),
                io.String.Input("api_key_env", default="",
                                display_name="api_key_env (ignored)",
                                tooltip="ignored, kept so saved workflows load: the key is "
                                        "the one bound to the server's host in keys.toml; "
                                        "a server on this machine gets none"),
                io.Boolean.Input("keep_loaded", default=True,
                                 tooltip="keep the model in memory between runs"),
                io.Float.Input("timeout", default=60.0, min=1.0, max=3600.0, step=1.0,
                               optional=True,
                               tooltip="openai-compatible: seconds per attempt (1 retry). "
                                       "After 3 images in a row fail the batch's rest is "
                                       "skipped; after 3 failed attempts in a row the server "
                                       "is skipped (every prompt) until a probe after a "
                                       "cool-down"),
            ],
            outputs=[VLM.Output(display_name="vlm")],
        )

    @classmethod
    def execute(cls, runtime: str, model: str, mmproj: str, dtype: str, quantization: str,
                n_gpu_layers: int, chat_format: str, base_url: str, model_name: str,
                api_key_env: str, keep_loaded: bool, timeout: float = 60.0) -> io.NodeOutput:
        note = ignored_widget_note(api_key_env, "api_key_env") \
            if runtime == "openai-compatible" else ""
        source = make_source(runtime, model, mmproj, dtype=dtype, quantization=quantization,
                             n_gpu_layers=n_gpu_layers, chat_format=chat_format,
                             base_url=base_url, model_name=model_name, timeout=timeout)
        handle = VLMHandle(source, keep_loaded, source.label)
        text = source.describe() + (f"\n{note}" if note else "")
        return io.NodeOutput(handle, ui=ui.PreviewText(text))


class SaitenVLMRater(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaitenVLMRater",
            display_name="Saiten VLM Rater",
            category="Saiten",
            description="Score every image of the batch on the rubric with a VLM. generate: "
                        "the model writes the JSON score card; logprob: scores read from the "
                        "probabilities of the rating digits (faster, steadier).",
            inputs=[
                io.Image.Input("images"),
                VLM.Input("vlm"),
                Scores.Input("scores", optional=True,
                             tooltip="cards from earlier sources (tags go into the prompt)"),
                io.Combo.Input("method", options=list(METHODS), default="logprob"),
                io.Boolean.Input("use_tags", default=True,
                                 tooltip="put the taggers' tags and ratings into the prompt"),
                io.Boolean.Input("comment", default=True,
                                 tooltip="logprob: also generate the short comment"),
                io.Int.Input("repeats", default=1, min=1, max=8,
                             tooltip="score each image N times (the aggregate takes the "
                                     "median); greedy decoding repeats itself, so 1 is enough "
                                     "for local models"),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight in the ensemble; 0 = the source's default "
                                       "(transformers 0.9)"),
                io.String.Input("label", default="", tooltip="Name of this source in the cards "
                                                              "(default: the model's name)"),
                Rubric.Input("rubric", optional=True,
                             tooltip="from Saiten Rubric (default: the built-in rubric)"),
            ],
            outputs=[Scores.Output(display_name="scores")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> int:
        return rerun.fingerprint("SaitenVLMRater", cls.hidden.unique_id if cls.hidden else None)

    @classmethod
    def execute(cls, images, vlm: VLMHandle, method: str, use_tags: bool, comment: bool,
                repeats: int, weight: float, label: str, scores: Sheet | None = None,
                rubric: RubricData | None = None) -> io.NodeOutput:
        source = vlm.source
        if isinstance(source, VLMSource):
            source.method, source.use_tags, source.want_comment = method, use_tags, comment
        source.weight = float(weight) if weight > 0 else source.default_weight
        source.label = label.strip() or vlm.label or source.label
        node_id = cls.hidden.unique_id if cls.hidden else None
        merged, mine = run_source(source, images, scores, rubric=rubric, repeats=repeats,
                                  keep_loaded=vlm.keep_loaded, node_id=node_id)
        rerun.record("SaitenVLMRater", node_id, mine)
        return io.NodeOutput(merged, ui=ui.PreviewText(cards_text(mine)))


NODES = [SaitenVLMLoader, SaitenVLMRater]
