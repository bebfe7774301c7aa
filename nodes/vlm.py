"""VLM nodes: a loader (transformers, llama.cpp or an OpenAI-compatible server) and a rater.

Models live in ComfyUI's `models/saiten_vlm` folder (and `models/LLM` when another pack
registered it): transformers models as folders (what `save_pretrained` or a Hugging Face
download writes), llama.cpp models as a GGUF file plus its paired mmproj GGUF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..scoring.core.cards import Sheet
from ..scoring.core.errors import SourceError, reason
from ..scoring.core.rubric import Rubric as RubricData
from ..scoring.sources import Source, catalogue, unavailable
from ..scoring.sources.vlm import files as vlm_files
from ..scoring.sources.vlm.base import model_label
from . import rerun
from .common import cached_source, cards_text, run_source
from .keys import ignored_widget_note, served_dirs
from .types import Rubric, Scores

FOLDER = "saiten_vlm"
SHARED_FOLDERS = ("LLM",)  # other packs' LLM folder, reused when registered
RUNTIMES = {"transformers": "vlm-transformers", "llama.cpp": "vlm-llamacpp",
            "openai-compatible": "vlm-http"}
AUTO_MMPROJ = "auto (paired file next to the model)"
NO_MODEL = "(none found: put models in models/saiten_vlm)"

VLM = io.Custom("SAITEN_VLM")
"""A `VLMHandle`: the loaded-model handle and whether it stays loaded after a run."""


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


def list_models() -> tuple[list[str], list[str]]:
    """(models, mmproj files) in the registered folders (`scoring.sources.vlm.files`)."""
    return vlm_files.list_vlms(model_roots())


@dataclass(frozen=True)
class VLMHandle:
    """The loader's output: a shared loaded-model handle (cached by its build options) and
    the loader's own settings. Raters pass their run options per call, never onto it."""

    source: Source
    keep_loaded: bool = True
    label: str = ""  # the loader's name for the model (cards' default source name)


def build_options(runtime: str, model: str, mmproj: str, *, dtype: str = "auto",
                  quantization: str = "none", n_gpu_layers: int = -1,
                  chat_format: str = "auto", base_url: str = "", model_name: str = "",
                  timeout: float = 60.0) -> tuple[str, dict[str, object]]:
    """The loader's widgets → (registry name, build options); SourceError saying what to fix."""
    if runtime not in RUNTIMES:
        raise SourceError(f"unknown runtime {runtime!r}; use one of {list(RUNTIMES)}")
    if runtime == "openai-compatible":
        if not model_name.strip():
            raise SourceError("openai-compatible: set model_name (the server's model id)")
        return "vlm-http", {"base_url": base_url.strip(), "model": model_name.strip(),
                            "timeout": float(timeout), "forbidden_dirs": tuple(served_dirs())}
    if model == NO_MODEL:
        raise SourceError(f"no model: put one in {os.path.join('models', FOLDER)}")
    roots = model_roots()
    path = vlm_files.find_vlm(model, roots)
    if runtime == "transformers":
        return "vlm-transformers", {"model_dir": str(path), "dtype": dtype,
                                    "quantization": quantization}
    if path.is_dir() or path.suffix.lower() != ".gguf":
        raise SourceError(f"llama.cpp needs a GGUF file, {model!r} is not one")
    _, files = vlm_files.vlm_files(str(path), None if mmproj == AUTO_MMPROJ else mmproj, roots)
    return "vlm-llamacpp", {**files, "chat_format": chat_format,
                            "n_gpu_layers": "auto" if n_gpu_layers < 0 else int(n_gpu_layers)}


def make_source(runtime: str, model: str, mmproj: str, **widgets: object) -> Source:
    """The cached handle for the loader's widgets; one that cannot be created comes back as
    `Unavailable` so the rest of the workflow still runs."""
    name = RUNTIMES.get(runtime, "vlm-transformers")
    try:
        name, build = build_options(runtime, model, mmproj, **widgets)  # type: ignore[arg-type]
        return cached_source(name, **build)
    except Exception as e:  # a missing runtime or file fails this source only
        label = model_label(Path(model).stem, gguf=model.lower().endswith(".gguf")) \
            if model != NO_MODEL and runtime != "openai-compatible" else runtime
        return unavailable(name, reason(e), label=label)


class SaitenVLMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        found, projs = list_models()
        tf, llama = catalogue.spec("vlm-transformers"), catalogue.spec("vlm-llamacpp")
        return io.Schema(
            node_id="SaitenVLMLoader",
            display_name="Saiten VLM Loader",
            category="Saiten",
            description="Choose a VLM scorer: a transformers model folder (JoyCaption, "
                        "ToriiGate…), a GGUF + its mmproj for llama.cpp, or an "
                        "OpenAI-compatible server. The model loads when the rater first runs.",
            inputs=[
                io.Combo.Input("runtime", options=list(RUNTIMES), default="transformers"),
                io.Combo.Input("model", options=found or [NO_MODEL],
                               tooltip="models/saiten_vlm: a transformers folder or a GGUF"),
                io.Combo.Input("mmproj", options=[AUTO_MMPROJ, *projs],
                               tooltip="llama.cpp: the mmproj GGUF made for this model"),
                io.Combo.Input("dtype", options=list(tf.choices["dtype"]),
                               tooltip="transformers: auto = ComfyUI's choice for the card"),
                io.Combo.Input("quantization", options=list(tf.choices["quantization"]),
                               tooltip="transformers: nf4 = 4-bit bitsandbytes"),
                io.Int.Input("n_gpu_layers", default=-1, min=-1, max=999,
                             tooltip="llama.cpp: layers on the GPU; -1 = as many as fit"),
                io.Combo.Input("chat_format", options=list(llama.choices["chat_format"]),
                               default="auto",
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
        spec = catalogue.spec("vlm-transformers")
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
                io.Combo.Input("method", options=list(spec.choices["method"]),
                               default=spec.option_default("method")),
                io.Boolean.Input("use_tags", default=True,
                                 tooltip="put the taggers' tags and ratings into the prompt"),
                io.Boolean.Input("comment", default=True,
                                 tooltip="logprob: also generate the short comment"),
                io.Int.Input("repeats", default=1, min=1, max=8,
                             tooltip="score each image N times (the aggregate takes the "
                                     "median); greedy decoding repeats itself, so 1 is enough "
                                     "for local models"),
                io.Float.Input("weight", default=0.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Weight in the ensemble; 0 = the model's default "
                                       "(" + ", ".join(f"{m.label} {m.weight}"
                                                       for m in spec.models) + ")"),
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
        options = {"method": method, "use_tags": use_tags, "comment": comment,
                   "weight": float(weight) if weight > 0 else None,
                   "label": label.strip() or vlm.label, "keep_loaded": vlm.keep_loaded}
        node_id = cls.hidden.unique_id if cls.hidden else None
        merged, mine = run_source(vlm.source, images, scores, rubric=rubric, repeats=repeats,
                                  options=options, node_id=node_id)
        rerun.record("SaitenVLMRater", node_id, mine)
        return io.NodeOutput(merged, ui=ui.PreviewText(cards_text(mine)))


NODES = [SaitenVLMLoader, SaitenVLMRater]
